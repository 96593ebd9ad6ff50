// token_file.cpp — HDF5 token file writer and validating reader (format in token_file.h).
#include "data/token_file.h"
#include <hdf5.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <filesystem>
#include "core/error.h"
#include "data/tokenizer.h"

namespace skein {
namespace {

constexpr int kFormatVersion = 1;
constexpr std::array<const char*, 2> kSplits = {"train", "val"};

void quiet_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// The innermost message on HDF5's error stack ("" when empty), then clears the stack.
std::string hdf5_detail() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD,
           [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
             if (e->desc && *e->desc) *static_cast<std::string*>(out) = e->desc;
             return 0;
           },
           &msg);
  H5Eclear2(H5E_DEFAULT);
  return msg.empty() ? "" : " (HDF5: " + msg + ")";
}

// An owned hid_t, closed with its matching H5?close.
class Id {
 public:
  Id() = default;
  Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Id(Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Id& operator=(Id&& o) noexcept {
    reset();
    id_ = o.id_; close_ = o.close_; o.id_ = -1;
    return *this;
  }
  ~Id() { reset(); }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }
  void reset() { if (id_ >= 0 && close_) close_(id_); id_ = -1; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

int split_index(const std::string& split, const std::string& path) {
  for (int i = 0; i < 2; ++i)
    if (split == kSplits[i]) return i;
  throw Error(detail::concat("token file '", path, "': unknown split '", split,
                             "' (expected \"train\" or \"val\")"));
}

}  // namespace

// ---------------------------------------------------------------- writer

struct TokenFileWriter::Impl {
  std::string path, tmp;
  int64_t vocab = 0, chunk = 0;
  Id file;
  Id tokens[2], offsets[2];
  std::vector<uint32_t> buffer[2];     // tokens not yet written
  int64_t written[2] = {0, 0};          // tokens in the dataset
  std::vector<int64_t> doc_offsets[2];  // written at finalize
  bool finalized = false;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(detail::concat("token file '", path, "' (writing '", tmp, "'): ", what, hdf5_detail()));
  }
  // Closes everything and deletes the temporary file.
  void abandon() {
    for (int s = 0; s < 2; ++s) { tokens[s].reset(); offsets[s].reset(); }
    file.reset();
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
  }
  void write_at(hid_t ds, const std::string& name, int64_t at, const void* data, int64_t n,
                hid_t mem_type) {
    if (n == 0) return;
    hsize_t new_size[1] = {static_cast<hsize_t>(at + n)};
    if (H5Dset_extent(ds, new_size) < 0) fail("cannot extend dataset " + name);
    Id fspace(H5Dget_space(ds), H5Sclose);
    hsize_t start[1] = {static_cast<hsize_t>(at)}, count[1] = {static_cast<hsize_t>(n)};
    Id mspace(H5Screate_simple(1, count, nullptr), H5Sclose);
    if (!fspace.ok() || !mspace.ok() ||
        H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) < 0 ||
        H5Dwrite(ds, mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, data) < 0)
      fail("cannot write dataset " + name);
  }
  void flush(int s) {
    write_at(tokens[s].get(), std::string("/") + kSplits[s] + "/tokens", written[s],
             buffer[s].data(), static_cast<int64_t>(buffer[s].size()), H5T_NATIVE_UINT32);
    written[s] += static_cast<int64_t>(buffer[s].size());
    buffer[s].clear();
  }
  Id make_dataset(hid_t group, const char* name, hid_t type, int compression) {
    hsize_t dims[1] = {0}, maxdims[1] = {H5S_UNLIMITED}, chunk_dims[1] = {static_cast<hsize_t>(chunk)};
    Id space(H5Screate_simple(1, dims, maxdims), H5Sclose);
    Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    if (H5Pset_chunk(dcpl.get(), 1, chunk_dims) < 0) fail("cannot set chunking");
    if (compression > 0 &&
        (H5Pset_shuffle(dcpl.get()) < 0 || H5Pset_deflate(dcpl.get(), static_cast<unsigned>(compression)) < 0))
      fail("cannot enable deflate compression");
    if (H5Pset_fletcher32(dcpl.get()) < 0) fail("cannot enable the fletcher32 checksum");
    Id ds(H5Dcreate2(group, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
    if (!ds.ok()) fail(std::string("cannot create dataset ") + name);
    return ds;
  }
  void attr_string(const char* name, const std::string& value) {
    Id type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), H5T_VARIABLE);
    H5Tset_cset(type.get(), H5T_CSET_UTF8);
    Id space(H5Screate(H5S_SCALAR), H5Sclose);
    Id a(H5Acreate2(file.get(), name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    const char* p = value.c_str();
    if (!a.ok() || H5Awrite(a.get(), type.get(), &p) < 0) fail(std::string("cannot write attribute ") + name);
  }
  void attr_int(const char* name, hid_t file_type, int64_t value) {
    Id space(H5Screate(H5S_SCALAR), H5Sclose);
    Id a(H5Acreate2(file.get(), name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    if (!a.ok() || H5Awrite(a.get(), H5T_NATIVE_INT64, &value) < 0)
      fail(std::string("cannot write attribute ") + name);
  }
};

TokenFileWriter::TokenFileWriter(const std::string& path, const std::string& identity,
                                 const std::string& kind, int64_t vocab_size, int64_t eos_id,
                                 int compression, int64_t chunk)
    : impl_(std::make_unique<Impl>()), path_(path) {
  quiet_hdf5();
  SKEIN_CHECK(vocab_size > 0 && vocab_size <= (int64_t{1} << 32), "token file '", path,
              "': vocab_size ", vocab_size, " must be in [1, 2^32]");
  SKEIN_CHECK(eos_id >= 0 && eos_id < vocab_size, "token file '", path, "': eos_id ", eos_id,
              " is outside the vocabulary [0, ", vocab_size, ")");
  SKEIN_CHECK(compression >= 0 && compression <= 9, "token file '", path,
              "': compression level ", compression, " must be in [0, 9]");
  SKEIN_CHECK(chunk > 0, "token file '", path, "': chunk ", chunk, " must be positive");
  Impl& m = *impl_;
  m.vocab = vocab_size;
  m.chunk = chunk;
  m.path = path;
  m.tmp = path + ".tmp-" + std::to_string(static_cast<long>(getpid()));
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  if (compression > 0 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0) m.fail("deflate is not available");
  try {
    create(compression, identity, kind, vocab_size, eos_id);
  } catch (...) {
    m.abandon();
    throw;
  }
}

void TokenFileWriter::create(int compression, const std::string& identity, const std::string& kind,
                             int64_t vocab_size, int64_t eos_id) {
  Impl& m = *impl_;
  Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST);  // large attributes
  m.file = Id(H5Fcreate(m.tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
  if (!m.file.ok()) m.fail("cannot create the file");
  hid_t token_type = vocab_size <= 65536 ? H5T_STD_U16LE : H5T_STD_U32LE;
  for (int s = 0; s < 2; ++s) {
    Id g(H5Gcreate2(m.file.get(), kSplits[s], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!g.ok()) m.fail(std::string("cannot create group /") + kSplits[s]);
    m.tokens[s] = m.make_dataset(g.get(), "tokens", token_type, compression);
    m.offsets[s] = m.make_dataset(g.get(), "doc_offsets", H5T_STD_I64LE, compression);
  }
  m.attr_int("format_version", H5T_STD_I32LE, kFormatVersion);
  m.attr_string("tokenizer", identity);
  m.attr_string("tokenizer_kind", kind);
  m.attr_int("vocab_size", H5T_STD_I64LE, vocab_size);
  m.attr_int("eos_id", H5T_STD_I64LE, eos_id);
}

TokenFileWriter::TokenFileWriter(const std::string& path, const Tokenizer& tok, int compression,
                                 int64_t chunk)
    : TokenFileWriter(path, tok.identity(), tok.kind(), tok.vocab_size(), tok.eos_id(),
                      compression, chunk) {}

TokenFileWriter::~TokenFileWriter() {
  if (impl_ && !impl_->finalized) impl_->abandon();
}

void TokenFileWriter::append(const std::string& split, const std::vector<int64_t>& ids) {
  Impl& m = *impl_;
  SKEIN_CHECK(!m.finalized, "token file '", path_, "': append after finalize");
  int s = split_index(split, path_);
  for (size_t i = 0; i < ids.size(); ++i)  // all checked first: a rejected document leaves no trace
    SKEIN_CHECK(ids[i] >= 0 && ids[i] < m.vocab, "token file '", path_, "': token id ", ids[i],
                " (document ", m.doc_offsets[s].size(), " of split ", split, ", index ", i,
                ") is outside the vocabulary [0, ", m.vocab, ")");
  m.doc_offsets[s].push_back(m.written[s] + static_cast<int64_t>(m.buffer[s].size()));
  for (int64_t id : ids) {
    m.buffer[s].push_back(static_cast<uint32_t>(id));
    if (static_cast<int64_t>(m.buffer[s].size()) >= m.chunk) m.flush(s);
  }
}

void TokenFileWriter::finalize() {
  Impl& m = *impl_;
  SKEIN_CHECK(!m.finalized, "token file '", path_, "': finalize called twice");
  for (int s = 0; s < 2; ++s) {
    m.flush(s);
    m.write_at(m.offsets[s].get(), std::string("/") + kSplits[s] + "/doc_offsets", 0,
               m.doc_offsets[s].data(), static_cast<int64_t>(m.doc_offsets[s].size()), H5T_NATIVE_INT64);
    m.tokens[s].reset();
    m.offsets[s].reset();
  }
  if (H5Fclose(m.file.get()) < 0) m.fail("cannot close the file");
  m.file = Id();
  std::error_code ec;
  std::filesystem::rename(m.tmp, path_, ec);
  SKEIN_CHECK(!ec, "token file '", path_, "': cannot rename '", m.tmp, "' into place: ", ec.message());
  m.finalized = true;
}

int64_t TokenFileWriter::tokens(const std::string& split) const {
  int s = split_index(split, path_);
  return impl_->written[s] + static_cast<int64_t>(impl_->buffer[s].size());
}
int64_t TokenFileWriter::documents(const std::string& split) const {
  return static_cast<int64_t>(impl_->doc_offsets[split_index(split, path_)].size());
}

// ---------------------------------------------------------------- reader

struct TokenFileImpl {
  std::string path;
  int format_version = 0;
  std::string identity, kind;
  int64_t vocab = 0, eos = 0;
  Id file;
  struct Split {
    std::string name, dataset;  // "train", "/train/tokens"
    Id tokens;
    int64_t size = 0;
    std::vector<int64_t> offsets;
  } splits[2];

  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    throw Error(detail::concat("token file '", path, "': ", where, where.empty() ? "" : ": ", what,
                               hdf5_detail()));
  }
  Id open_attr(const char* name, H5T_class_t cls) const {
    std::string where = std::string("attribute '") + name + "' on /";
    if (H5Aexists(file.get(), name) <= 0) fail(where, "missing");
    Id a(H5Aopen(file.get(), name, H5P_DEFAULT), H5Aclose);
    Id type(H5Aget_type(a.get()), H5Tclose);
    Id space(H5Aget_space(a.get()), H5Sclose);
    if (!a.ok() || !type.ok() || !space.ok()) fail(where, "cannot open");
    if (H5Tget_class(type.get()) != cls)
      fail(where, cls == H5T_STRING ? "is not a string" : "is not an integer");
    if (H5Sget_simple_extent_npoints(space.get()) != 1) fail(where, "is not a single value");
    return a;
  }
  int64_t attr_int(const char* name) const {
    Id a = open_attr(name, H5T_INTEGER);
    int64_t v = 0;
    if (H5Aread(a.get(), H5T_NATIVE_INT64, &v) < 0)
      fail(std::string("attribute '") + name + "' on /", "cannot read");
    return v;
  }
  std::string attr_string(const char* name) const {
    Id a = open_attr(name, H5T_STRING);
    Id type(H5Aget_type(a.get()), H5Tclose);
    std::string where = std::string("attribute '") + name + "' on /";
    if (H5Tis_variable_str(type.get()) > 0) {
      Id mem(H5Tcopy(H5T_C_S1), H5Tclose);
      H5Tset_size(mem.get(), H5T_VARIABLE);
      H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
      char* p = nullptr;
      if (H5Aread(a.get(), mem.get(), &p) < 0) fail(where, "cannot read");
      std::string s = p ? p : "";
      H5free_memory(p);
      return s;
    }
    std::string s(H5Tget_size(type.get()), '\0');
    if (H5Aread(a.get(), type.get(), s.data()) < 0) fail(where, "cannot read");
    return s.substr(0, s.find('\0'));  // fixed-length: NUL-padded
  }
  // Opens a 1-D integer dataset; returns it and its length.
  Id open_dataset(const std::string& name, int64_t* length, H5T_sign_t sign,
                  std::initializer_list<size_t> sizes, const char* want) const {
    std::string where = "dataset " + name;
    std::string group = name.substr(0, name.rfind('/'));
    if (H5Lexists(file.get(), group.c_str(), H5P_DEFAULT) <= 0 ||
        H5Lexists(file.get(), name.c_str(), H5P_DEFAULT) <= 0)
      fail(where, "missing");
    Id ds(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
    if (!ds.ok()) fail(where, "cannot open (not a dataset?)");
    Id type(H5Dget_type(ds.get()), H5Tclose);
    size_t tsize = H5Tget_size(type.get());
    if (H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_sign(type.get()) != sign ||
        std::find(sizes.begin(), sizes.end(), tsize) == sizes.end())
      fail(where, detail::concat("has the wrong dtype (class ", H5Tget_class(type.get()), ", ",
                                 tsize, " bytes); expected ", want));
    Id space(H5Dget_space(ds.get()), H5Sclose);
    int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank != 1) fail(where, detail::concat("has rank ", rank, "; expected 1-D"));
    hsize_t dims[1] = {0};
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
    *length = static_cast<int64_t>(dims[0]);
    if (sign == H5T_SGN_NONE && tsize == 2 && vocab > 65536)
      fail(where, detail::concat("is uint16 but vocab_size is ", vocab));
    return ds;
  }
  void read_range(const Split& sp, hid_t ds, const std::string& name, int64_t start, int64_t n,
                  int64_t* out) const {
    hsize_t off[1] = {static_cast<hsize_t>(start)}, count[1] = {static_cast<hsize_t>(n)};
    Id fspace(H5Dget_space(ds), H5Sclose);
    Id mspace(H5Screate_simple(1, count, nullptr), H5Sclose);
    if (H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, off, nullptr, count, nullptr) < 0 ||
        H5Dread(ds, H5T_NATIVE_INT64, mspace.get(), fspace.get(), H5P_DEFAULT, out) < 0)
      fail("dataset " + name, detail::concat("cannot read tokens [", start, ", ", start + n,
                                             ") of ", sp.size, " (corrupt file?)"));
  }
};

TokenFile TokenFile::open(const std::string& path) {
  quiet_hdf5();
  auto impl = std::make_shared<TokenFileImpl>();
  TokenFileImpl& m = *impl;
  m.path = path;
  std::error_code ec;
  SKEIN_CHECK(std::filesystem::exists(path, ec), "token file '", path, "': no such file");
  SKEIN_CHECK(std::filesystem::is_regular_file(path, ec), "token file '", path, "': not a regular file");
  htri_t is_h5 = H5Fis_hdf5(path.c_str());
  if (is_h5 <= 0) m.fail("", "is not an HDF5 file (corrupt or wrong format)");
  Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_cache(fapl.get(), 0, 12421, 64 << 20, 0.75);  // 64 MiB chunk cache per dataset
  m.file = Id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
  if (!m.file.ok()) m.fail("", "cannot open (corrupt or truncated HDF5 file?)");

  int64_t version = m.attr_int("format_version");
  if (version != kFormatVersion)
    m.fail("attribute 'format_version' on /",
           detail::concat("unknown format version ", version, " (this skein reads ", kFormatVersion, ")"));
  m.format_version = static_cast<int>(version);
  m.identity = m.attr_string("tokenizer");
  m.kind = m.attr_string("tokenizer_kind");
  m.vocab = m.attr_int("vocab_size");
  m.eos = m.attr_int("eos_id");
  if (m.identity.empty()) m.fail("attribute 'tokenizer' on /", "is empty");
  if (m.kind.empty()) m.fail("attribute 'tokenizer_kind' on /", "is empty");
  if (m.vocab <= 0 || m.vocab > (int64_t{1} << 32))
    m.fail("attribute 'vocab_size' on /", detail::concat("value ", m.vocab, " is not in [1, 2^32]"));
  if (m.eos < 0 || m.eos >= m.vocab)
    m.fail("attribute 'eos_id' on /", detail::concat("value ", m.eos, " is outside [0, ", m.vocab, ")"));

  for (int s = 0; s < 2; ++s) {
    TokenFileImpl::Split& sp = m.splits[s];
    sp.name = kSplits[s];
    sp.dataset = "/" + sp.name + "/tokens";
    sp.tokens = m.open_dataset(sp.dataset, &sp.size, H5T_SGN_NONE, {2, 4}, "uint16 or uint32");
    std::string oname = "/" + sp.name + "/doc_offsets";
    int64_t ndocs = 0;
    Id ods = m.open_dataset(oname, &ndocs, H5T_SGN_2, {8}, "int64");
    sp.offsets.resize(static_cast<size_t>(ndocs));
    if (ndocs > 0 && H5Dread(ods.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                             sp.offsets.data()) < 0)
      m.fail("dataset " + oname, "cannot read (corrupt file?)");
    for (int64_t d = 0; d < ndocs; ++d) {
      int64_t o = sp.offsets[static_cast<size_t>(d)];
      int64_t prev = d == 0 ? 0 : sp.offsets[static_cast<size_t>(d - 1)];
      if ((d == 0 && o != 0) || o < prev || o > sp.size)
        m.fail("dataset " + oname, detail::concat("offset ", o, " of document ", d,
                                                  " is invalid (need first 0, non-decreasing, <= ",
                                                  sp.size, " tokens)"));
    }
    if (ndocs == 0 && sp.size > 0)
      m.fail("dataset " + oname, detail::concat("is empty but ", sp.dataset, " holds ", sp.size, " tokens"));
  }
  TokenFile tf;
  tf.impl_ = impl;
  for (int s = 0; s < 2; ++s) { tf.splits_[s].file_ = impl; tf.splits_[s].index_ = s; }
  return tf;
}

const std::string& TokenFile::path() const { return impl_->path; }
int TokenFile::format_version() const { return impl_->format_version; }
const std::string& TokenFile::tokenizer_identity() const { return impl_->identity; }
const std::string& TokenFile::tokenizer_kind() const { return impl_->kind; }
int64_t TokenFile::vocab_size() const { return impl_->vocab; }
int64_t TokenFile::eos_id() const { return impl_->eos; }
const TokenSplit& TokenFile::split(const std::string& name) const {
  return splits_[split_index(name, impl_->path)];
}

const std::string& TokenSplit::name() const { return file_->splits[index_].name; }
int64_t TokenSplit::size() const { return file_->splits[index_].size; }
int64_t TokenSplit::num_documents() const {
  return static_cast<int64_t>(file_->splits[index_].offsets.size());
}
const std::vector<int64_t>& TokenSplit::doc_offsets() const { return file_->splits[index_].offsets; }

std::vector<int64_t> TokenSplit::read(int64_t start, int64_t n) const {
  std::vector<int64_t> out(static_cast<size_t>(std::max<int64_t>(n, 0)));
  read(start, n, out.data());
  return out;
}

void TokenSplit::read(int64_t start, int64_t n, int64_t* out) const {
  quiet_hdf5();
  const TokenFileImpl& m = *file_;
  const TokenFileImpl::Split& sp = m.splits[index_];
  SKEIN_CHECK(start >= 0 && n >= 0 && start + n <= sp.size, "token file '", m.path, "': dataset ",
              sp.dataset, ": range [", start, ", ", start + n, ") is outside the ", sp.size, " tokens");
  if (n == 0) return;
  m.read_range(sp, sp.tokens.get(), sp.dataset, start, n, out);
  for (int64_t i = 0; i < n; ++i)
    if (out[i] < 0 || out[i] >= m.vocab)
      m.fail("dataset " + sp.dataset, detail::concat("token id ", out[i], " at position ", start + i,
                                                     " is >= vocab_size ", m.vocab));
}

}  // namespace skein
