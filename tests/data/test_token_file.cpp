// test_token_file.cpp — the HDF5 token file: write/read round trip (both token dtypes, with
// and without compression, several chunks), crash safety of the writer, and that every kind
// of broken file is an Error naming the file and the dataset or attribute.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include "core/error.h"
#include "data/token_file.h"

namespace skein {
namespace {
namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("skein_test_token_file_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The message of the Error thrown by f ("" if none).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<int64_t> ramp(int64_t n, int64_t start, int64_t mod) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = (start + i * 7) % mod;
  return v;
}

// A small valid file: train = docs of 5, 0, 12 tokens; val = one doc of 4.
std::string write_small(const fs::path& dir, int64_t vocab = 300, int compression = 0) {
  std::string path = (dir / "small.h5").string();
  TokenFileWriter w(path, "bytes", "bytes", vocab, 5, compression, 4);
  w.append("train", {1, 2, 3, 4, 5});
  w.append("train", {});
  w.append("train", ramp(12, 3, vocab));
  w.append("val", {9, 8, 7, 5});
  w.finalize();
  return path;
}

hid_t open_rw(const std::string& path) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  EXPECT_GE(f, 0);
  return f;
}

TEST(TokenFile, RoundTripBothDtypesAndCompression) {
  fs::path dir = temp_dir("roundtrip");
  for (int64_t vocab : {int64_t{300}, int64_t{65536}, int64_t{70000}}) {
    for (int compression : {0, 6}) {
      std::string path = (dir / detail::concat("v", vocab, "_c", compression, ".h5")).string();
      std::vector<std::vector<int64_t>> train = {ramp(1000, 1, vocab), ramp(37, 5, vocab), {vocab - 1}};
      std::vector<int64_t> val = ramp(333, 2, vocab);
      {
        TokenFileWriter w(path, "identity-text", "bpe", vocab, vocab - 1, compression, 64);
        for (const auto& d : train) w.append("train", d);
        w.append("val", val);
        EXPECT_EQ(w.tokens("train"), 1038);
        EXPECT_EQ(w.documents("train"), 3);
        EXPECT_FALSE(fs::exists(path)) << "the final name must appear only at finalize";
        w.finalize();
      }
      TokenFile tf = TokenFile::open(path);
      EXPECT_EQ(tf.format_version(), 1);
      EXPECT_EQ(tf.tokenizer_identity(), "identity-text");
      EXPECT_EQ(tf.tokenizer_kind(), "bpe");
      EXPECT_EQ(tf.vocab_size(), vocab);
      EXPECT_EQ(tf.eos_id(), vocab - 1);
      const TokenSplit& tr = tf.split("train");
      ASSERT_EQ(tr.size(), 1038);
      EXPECT_EQ(tr.doc_offsets(), (std::vector<int64_t>{0, 1000, 1037}));
      std::vector<int64_t> all;
      for (const auto& d : train) all.insert(all.end(), d.begin(), d.end());
      EXPECT_EQ(tr.read(0, tr.size()), all);
      EXPECT_EQ(tr.read(990, 20), std::vector<int64_t>(all.begin() + 990, all.begin() + 1010));
      EXPECT_EQ(tf.split("val").read(0, 333), val);
      EXPECT_EQ(tf.split("val").num_documents(), 1);

      // The on-disk dtype: uint16 up to 65536 ids, else uint32.
      hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
      hid_t ds = H5Dopen2(f, "/train/tokens", H5P_DEFAULT);
      hid_t t = H5Dget_type(ds);
      EXPECT_EQ(H5Tget_size(t), vocab <= 65536 ? 2u : 4u);
      EXPECT_EQ(H5Tget_sign(t), H5T_SGN_NONE);
      H5Tclose(t); H5Dclose(ds); H5Fclose(f);
    }
  }
  fs::remove_all(dir);
}

TEST(TokenFile, EmptySplitAndLargeIdentityAttribute) {
  fs::path dir = temp_dir("empty");
  std::string path = (dir / "t.h5").string();
  std::string identity(300000, 'x');  // beyond HDF5's 64 KiB compact attribute limit
  identity[123] = '{';
  {
    TokenFileWriter w(path, identity, "bpe", 1000, 0);
    w.append("train", {1, 2, 3});
    w.finalize();
  }
  TokenFile tf = TokenFile::open(path);
  EXPECT_EQ(tf.tokenizer_identity(), identity);
  EXPECT_EQ(tf.split("val").size(), 0);
  EXPECT_EQ(tf.split("val").num_documents(), 0);
  EXPECT_EQ(tf.split("val").read(0, 0).size(), 0u);
  fs::remove_all(dir);
}

TEST(TokenFile, WriterWithoutFinalizeLeavesNothing) {
  fs::path dir = temp_dir("abandon");
  std::string path = (dir / "t.h5").string();
  {
    TokenFileWriter w(path, "bytes", "bytes", 257, 256);
    w.append("train", {1, 2, 3});
  }
  EXPECT_TRUE(fs::is_empty(dir)) << "neither the file nor its temporary may remain";
  TokenFileWriter w(path, "bytes", "bytes", 257, 256);
  std::string msg = error_of([&] { w.append("train", {1, 257}); });
  EXPECT_NE(msg.find("257"), std::string::npos) << msg;
  EXPECT_EQ(w.documents("train"), 0) << "a rejected document leaves no trace";
  EXPECT_EQ(w.tokens("train"), 0);
  EXPECT_NE(error_of([&] { w.append("test", {1}); }).find("unknown split 'test'"), std::string::npos);
  fs::remove_all(dir);
}

TEST(TokenFile, MissingAndGarbageFilesNameTheFile) {
  fs::path dir = temp_dir("garbage");
  std::string missing = (dir / "nope.h5").string();
  std::string msg = error_of([&] { TokenFile::open(missing); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  EXPECT_NE(msg.find("no such file"), std::string::npos) << msg;

  std::string garbage = (dir / "garbage.h5").string();
  {
    std::ofstream f(garbage, std::ios::binary);
    for (int i = 0; i < 5000; ++i) f.put(static_cast<char>((i * 131 + 7) & 0xff));
  }
  msg = error_of([&] { TokenFile::open(garbage); });
  EXPECT_NE(msg.find(garbage), std::string::npos) << msg;
  EXPECT_NE(msg.find("not an HDF5 file"), std::string::npos) << msg;

  // A real file cut in half: the superblock is fine, the rest is missing.
  std::string good = write_small(dir, 300, 4);
  std::string cut = (dir / "cut.h5").string();
  {
    std::ifstream in(good, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(cut, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  msg = error_of([&] {
    TokenFile tf = TokenFile::open(cut);
    tf.split("train").read(0, tf.split("train").size());
    tf.split("val").read(0, tf.split("val").size());
  });
  EXPECT_NE(msg.find(cut), std::string::npos) << msg;

  // Garbage bytes over the middle of a file that is mostly uncompressed token chunks: the
  // fletcher32 checksum catches it on read (or the metadata check at open, if hit there).
  for (int compression : {0, 4}) {
    std::string big = (dir / detail::concat("big", compression, ".h5")).string();
    {
      TokenFileWriter w(big, "bytes", "bytes", 65536, 5, compression, 1024);  // any uint16 is an id
      w.append("train", ramp(100000, 0, 65536));
      w.finalize();
    }
    auto size = static_cast<std::streamoff>(fs::file_size(big));
    {
      std::fstream f(big, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(size * 6 / 10);
      for (int i = 0; i < 64; ++i) f.put(static_cast<char>(0xA5 ^ i));
    }
    msg = error_of([&] {
      TokenFile tf = TokenFile::open(big);
      tf.split("train").read(0, tf.split("train").size());
    });
    EXPECT_NE(msg.find(big), std::string::npos) << msg;
    EXPECT_NE(msg.find("/train/tokens"), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}

TEST(TokenFile, MissingDatasetOrAttributeIsNamed) {
  fs::path dir = temp_dir("missing");
  struct Case {
    const char* name;
    std::function<void(hid_t)> damage;
    const char* expect;
  };
  std::vector<Case> cases = {
      {"no_val_tokens", [](hid_t f) { H5Ldelete(f, "/val/tokens", H5P_DEFAULT); }, "/val/tokens"},
      {"no_train_group", [](hid_t f) { H5Ldelete(f, "/train", H5P_DEFAULT); }, "/train/tokens"},
      {"no_offsets", [](hid_t f) { H5Ldelete(f, "/train/doc_offsets", H5P_DEFAULT); }, "/train/doc_offsets"},
      {"no_vocab", [](hid_t f) { H5Adelete(f, "vocab_size"); }, "vocab_size"},
      {"no_tokenizer", [](hid_t f) { H5Adelete(f, "tokenizer"); }, "tokenizer"},
      {"float_tokens",
       [](hid_t f) {
         H5Ldelete(f, "/train/tokens", H5P_DEFAULT);
         hsize_t n[1] = {17};
         hid_t sp = H5Screate_simple(1, n, nullptr);
         H5Dclose(H5Dcreate2(f, "/train/tokens", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
         H5Sclose(sp);
       },
       "/train/tokens"},
      {"rank2_tokens",
       [](hid_t f) {
         H5Ldelete(f, "/val/tokens", H5P_DEFAULT);
         hsize_t n[2] = {2, 2};
         hid_t sp = H5Screate_simple(2, n, nullptr);
         H5Dclose(H5Dcreate2(f, "/val/tokens", H5T_STD_U16LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
         H5Sclose(sp);
       },
       "/val/tokens"},
      {"version2",
       [](hid_t f) {
         hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
         int v = 2;
         H5Awrite(a, H5T_NATIVE_INT, &v);
         H5Aclose(a);
       },
       "format_version"},
      {"bad_offsets",
       [](hid_t f) {
         hid_t ds = H5Dopen2(f, "/train/doc_offsets", H5P_DEFAULT);
         int64_t v[3] = {0, 9, 3};  // decreasing
         H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
         H5Dclose(ds);
       },
       "/train/doc_offsets"},
  };
  for (const Case& c : cases) {
    fs::path sub = dir / c.name;
    fs::create_directories(sub);
    std::string path = write_small(sub);
    hid_t f = open_rw(path);
    c.damage(f);
    H5Fclose(f);
    std::string msg = error_of([&] { TokenFile::open(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
  }
  fs::remove_all(dir);
}

TEST(TokenFile, TokenAtLeastVocabIsNamedWithPosition) {
  fs::path dir = temp_dir("vocab");
  std::string path = write_small(dir, 300);  // train tokens 1 2 3 4 5 | 3 10 17 ...
  hid_t f = open_rw(path);
  hid_t a = H5Aopen(f, "vocab_size", H5P_DEFAULT);
  int64_t v = 6;  // now tokens 10, 17, ... are out of range
  H5Awrite(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a);
  H5Fclose(f);
  TokenFile tf = TokenFile::open(path);  // validated lazily, per read
  EXPECT_EQ(tf.split("train").read(0, 6), (std::vector<int64_t>{1, 2, 3, 4, 5, 3}));
  std::string msg = error_of([&] { tf.split("train").read(2, 8); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("/train/tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("token id 10 at position 6"), std::string::npos) << msg;

  msg = error_of([&] { tf.split("val").read(2, 3); });
  EXPECT_NE(msg.find("[2, 5) is outside the 4 tokens"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { tf.split("test"); }).find("unknown split"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace skein
