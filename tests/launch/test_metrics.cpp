// test_metrics.cpp — CRC-32C and its mask against published vectors, TFRecord framing and
// Event protobuf bytes against hand-assembled golden bytes, and MetricsWriter's files read
// back: metrics.jsonl with nlohmann-json, the event file with a small reader here (framing,
// both CRCs, protobuf fields) and, when the package is installed, with TensorBoard itself.
#include <gtest/gtest.h>
#include <unistd.h>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include "launch/metrics.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

std::string temp_root(const std::string& name) {
  auto p = fs::temp_directory_path() / ("skein_test_metrics_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

std::string unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size();) {
    if (h[i] == ' ') { ++i; continue; }
    out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
    i += 2;
  }
  return out;
}

uint64_t le(const std::string& s, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

// --- a minimal reader: TFRecord records (both CRCs checked) and the Event fields we write ---
std::vector<std::string> read_records(const std::string& bytes) {
  std::vector<std::string> out;
  size_t p = 0;
  while (p < bytes.size()) {
    EXPECT_LE(p + 12, bytes.size()) << "truncated record header";
    if (p + 12 > bytes.size()) break;
    const uint64_t n = le(bytes, p, 8);
    EXPECT_EQ(le(bytes, p + 8, 4), masked_crc32c(bytes.data() + p, 8)) << "length crc at " << p;
    EXPECT_LE(p + 12 + n + 4, bytes.size()) << "truncated record data";
    if (p + 12 + n + 4 > bytes.size()) break;
    std::string data = bytes.substr(p + 12, n);
    EXPECT_EQ(le(bytes, p + 12 + n, 4), masked_crc32c(data.data(), data.size())) << "data crc at " << p;
    out.push_back(data);
    p += 12 + n + 4;
  }
  return out;
}

struct Proto {
  const std::string& s;
  size_t p = 0;
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      const auto b = static_cast<unsigned char>(s.at(p++));
      v |= uint64_t{b & 0x7Fu} << shift;
      if (!(b & 0x80)) return v;
    }
  }
};

struct DecodedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  int session_status = -1;
  std::vector<std::pair<std::string, float>> values;
};

DecodedEvent decode_event(const std::string& bytes) {
  DecodedEvent e;
  Proto r{bytes};
  while (r.p < bytes.size()) {
    const uint64_t key = r.varint();
    const uint64_t field = key >> 3, wt = key & 7;
    if (wt == 1) {
      uint64_t bits = le(bytes, r.p, 8);
      r.p += 8;
      EXPECT_EQ(field, 1u);
      std::memcpy(&e.wall_time, &bits, 8);
    } else if (wt == 0) {
      EXPECT_EQ(field, 2u);
      e.step = static_cast<int64_t>(r.varint());
    } else {
      EXPECT_EQ(wt, 2u) << "field " << field;
      const uint64_t n = r.varint();
      const std::string sub = bytes.substr(r.p, n);
      r.p += n;
      if (field == 3) {
        e.file_version = sub;
      } else if (field == 7) {
        EXPECT_EQ(sub, unhex("0801"));  // SessionLog{status: START}
        e.session_status = static_cast<unsigned char>(sub[1]);
      } else {
        EXPECT_EQ(field, 5u);
        Proto sr{sub};
        while (sr.p < sub.size()) {
          EXPECT_EQ(sr.varint(), 0x0Au);  // Summary.value
          const uint64_t vn = sr.varint();
          const std::string v = sub.substr(sr.p, vn);
          sr.p += vn;
          Proto vr{v};
          std::pair<std::string, float> tv;
          while (vr.p < v.size()) {
            const uint64_t k = vr.varint();
            if (k == 0x0A) {
              const uint64_t tn = vr.varint();
              tv.first = v.substr(vr.p, tn);
              vr.p += tn;
            } else {
              EXPECT_EQ(k, 0x15u);
              uint32_t bits = static_cast<uint32_t>(le(v, vr.p, 4));
              vr.p += 4;
              std::memcpy(&tv.second, &bits, 4);
            }
          }
          e.values.push_back(tv);
        }
      }
    }
  }
  return e;
}

std::vector<fs::path> event_files(const std::string& run_dir) {
  std::vector<fs::path> files;
  for (auto& f : fs::directory_iterator(fs::path(run_dir) / "tb")) files.push_back(f.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  std::string zeros(32, '\0'), ones(32, '\xFF'), inc;
  for (int i = 0; i < 32; ++i) inc.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);  // RFC 3720 B.4
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(inc.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(Crc32c, Masked) {
  // tensorboard/data/server/masked_crc.rs test vector
  const std::string s = unhex("1a11") + "CRC test, one two";
  EXPECT_EQ(masked_crc32c(s.data(), s.size()), 0x5794D08Au);
  // ((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xA282EAD8, by hand
  EXPECT_EQ(masked_crc32c("123456789", 9), 0xC78AB0E5u);
}

TEST(TfRecord, FramingBytes) {
  const std::string r = tfrecord("abc");
  ASSERT_EQ(r.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(r.substr(0, 8), unhex("0300000000000000"));
  EXPECT_EQ(r.substr(8, 4), unhex("b099490e"));   // masked crc of the length bytes, 0x0E4999B0
  EXPECT_EQ(r.substr(12, 3), "abc");
  EXPECT_EQ(r.substr(15, 4), unhex("6e57f121"));  // masked crc of "abc", 0x21F1576E
  EXPECT_EQ(tfrecord("").size(), 16u);
}

TEST(Event, ScalarEventGoldenBytes) {
  // ecosystem.md §3.2: built by hand, checked against protoc's SerializeToString
  const std::string ev = scalar_event(1700000000.5, 42, "train/loss", 2.5f);
  EXPECT_EQ(ev, unhex("0900002040fc54d941 102a 2a13 0a11 0a0a747261696e2f6c6f7373 1500002040"));
  EXPECT_EQ(tfrecord(ev), unhex("2000000000000000 29eda950") + ev + unhex("504bff3f"));
}

TEST(Event, FieldEncodings) {
  // file_version: 0x1a len "brain.Event:2"
  EXPECT_EQ(file_version_event(1700000000.5), unhex("0900002040fc54d941 1a0d") + "brain.Event:2");
  // step 0 and wall_time 0 are defaults (omitted); a negative int64 step is a 10-byte varint;
  // step 300 = 0xAC 0x02; simple_value 0 is a oneof member and is always written
  EXPECT_EQ(scalar_event(0, 0, "a", 0.0f), unhex("2a0a 0a08 0a0161 1500000000"));
  EXPECT_EQ(scalar_event(0, -1, "a", 1.0f),
            unhex("10ffffffffffffffffff01 2a0a 0a08 0a0161 150000803f"));
  EXPECT_EQ(scalar_event(0, 300, "a", -2.0f), unhex("10ac02 2a0a 0a08 0a0161 15000000c0"));
}

TEST(MetricsWriter, JsonlAndEventFileReadBack) {
  const std::string dir = temp_root("readback");
  const double tricky = 0.1 + 0.2;  // 0.30000000000000004: needs 17 digits
  {
    MetricsWriter w(dir, LogConfig{});
    w.write(1, {{"loss", 2.5}, {"lr", tricky}, {"bad", std::numeric_limits<double>::quiet_NaN()}});
    w.write(2, {{"loss", 1e-300}, {"say \"hi\"\n", -std::numeric_limits<double>::infinity()}});
    w.write(3, {{"loss", 1.0 / 3.0}});
  }
  std::ifstream in(fs::path(dir) / "metrics.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["step"].get<int64_t>(), 1);
  EXPECT_TRUE(lines[0]["step"].is_number_integer());
  EXPECT_EQ(lines[0]["loss"].get<double>(), 2.5);
  EXPECT_EQ(lines[0]["lr"].get<double>(), tricky);  // bit-exact round trip
  EXPECT_TRUE(lines[0]["bad"].is_null());            // NaN -> null
  EXPECT_EQ(lines[1]["loss"].get<double>(), 1e-300);
  EXPECT_TRUE(lines[1]["say \"hi\"\n"].is_null());   // escaped key, -inf -> null
  EXPECT_EQ(lines[2]["loss"].get<double>(), 1.0 / 3.0);

  auto files = event_files(dir);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(std::regex_match(files[0].filename().string(), std::regex(R"(events\.out\.tfevents\.\d{10}\..+)")))
      << files[0];
  auto recs = read_records(slurp(files[0]));
  ASSERT_EQ(recs.size(), 5u);  // file_version, session START, 3 summaries
  DecodedEvent e0 = decode_event(recs[0]), e1 = decode_event(recs[1]);
  EXPECT_EQ(e0.file_version, "brain.Event:2");
  EXPECT_GT(e0.wall_time, 1.6e9);
  EXPECT_EQ(e1.session_status, 1);
  EXPECT_EQ(e1.step, 1);
  DecodedEvent a = decode_event(recs[2]), b = decode_event(recs[3]), c = decode_event(recs[4]);
  EXPECT_EQ(a.step, 1);
  ASSERT_EQ(a.values.size(), 3u);  // map order: bad, loss, lr
  EXPECT_EQ(a.values[0].first, "bad");
  EXPECT_TRUE(std::isnan(a.values[0].second));
  EXPECT_EQ(a.values[1], (std::pair<std::string, float>{"loss", 2.5f}));
  EXPECT_EQ(a.values[2], (std::pair<std::string, float>{"lr", static_cast<float>(tricky)}));
  EXPECT_EQ(b.step, 2);
  ASSERT_EQ(b.values.size(), 2u);
  EXPECT_EQ(c.step, 3);
  EXPECT_EQ(c.values.at(0), (std::pair<std::string, float>{"loss", static_cast<float>(1.0 / 3.0)}));
  EXPECT_GE(c.wall_time, a.wall_time);
  fs::remove_all(dir);
}

TEST(MetricsWriter, ResumeAppendsJsonlAndStartsANewEventFile) {
  const std::string dir = temp_root("resume");
  { MetricsWriter(dir, LogConfig{}).write(10, {{"loss", 3.0}}); }
  {
    MetricsWriter w(dir, LogConfig{});
    w.write(5, {{"loss", 2.0}});
    w.flush();
    // flushed: both files hold the line/record before the writer goes away
    std::ifstream in(fs::path(dir) / "metrics.jsonl");
    int n = 0;
    for (std::string l; std::getline(in, l);) ++n;
    EXPECT_EQ(n, 2);
  }
  auto files = event_files(dir);
  ASSERT_EQ(files.size(), 2u);  // never overwritten, even within the same second
  auto recs = read_records(slurp(files[1]));
  ASSERT_EQ(recs.size(), 3u);
  DecodedEvent start = decode_event(recs[1]);
  EXPECT_EQ(start.session_status, 1);  // drops TensorBoard points at steps >= 5 from the first file
  EXPECT_EQ(start.step, 5);
  fs::remove_all(dir);
}

// A resume at an older checkpoint (--resume auto's fallback) trains steps 21.. again: their old
// lines go, the earlier ones stay, byte for byte.
TEST(MetricsWriter, ResumeAtAnOlderStepDropsTheLinesPastIt) {
  const std::string dir = temp_root("truncate");
  {
    MetricsWriter w(dir, LogConfig{});
    for (int64_t s = 10; s <= 40; s += 10) w.write(s, {{"loss", 1.0 / static_cast<double>(s)}});
  }
  std::vector<std::string> before;
  {
    std::ifstream in(fs::path(dir) / "metrics.jsonl");
    for (std::string l; std::getline(in, l);) before.push_back(l);
  }
  ASSERT_EQ(before.size(), 4u);
  EXPECT_EQ(truncate_metrics_after(dir, 20), 2);
  std::vector<std::string> after;
  {
    std::ifstream in(fs::path(dir) / "metrics.jsonl");
    for (std::string l; std::getline(in, l);) after.push_back(l);
  }
  EXPECT_EQ(after, std::vector<std::string>(before.begin(), before.begin() + 2));
  EXPECT_EQ(truncate_metrics_after(dir, 20), 0);  // idempotent
  EXPECT_EQ(truncate_metrics_after(dir + "/missing", 5), 0);
  fs::remove_all(dir);
}

TEST(MetricsWriter, DisabledOutputsWriteNothing) {
  const std::string dir = temp_root("off");
  LogConfig off;
  off.jsonl = false;
  off.tensorboard = false;
  { MetricsWriter(dir, off).write(1, {{"loss", 1.0}}); }
  EXPECT_FALSE(fs::exists(fs::path(dir) / "metrics.jsonl"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "tb"));
  fs::remove_all(dir);
}

// Reads the event files with TensorBoard's own EventAccumulator (tests/launch/tb_read.py),
// including the purge of stale points after a resume.
TEST(MetricsWriter, TensorBoardReadsTheEventFiles) {
  if (std::system("python3 -c 'import tensorboard' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "tensorboard not installed: event file checked by the C++ reader only";
  const std::string dir = temp_root("tensorboard");
  LogConfig tb_only;
  tb_only.jsonl = false;
  nlohmann::json expect = {{"loss", nlohmann::json::array()}, {"lr", nlohmann::json::array()}};
  {
    MetricsWriter w(dir, tb_only);
    for (int s = 1; s <= 10; ++s) {
      w.write(s, {{"loss", 10.0 / s}, {"lr", 1e-3 * s}});
      if (s <= 5) expect["loss"].push_back({s, static_cast<float>(10.0 / s)});
      expect["lr"].push_back({s, static_cast<float>(1e-3 * s)});
    }
  }
  {  // resumed at step 5: losses logged at 6..10 before are stale and must disappear
    MetricsWriter w(dir, tb_only);
    for (int s = 6; s <= 8; ++s) {
      w.write(s, {{"loss", 100.0 + s}});
      expect["loss"].push_back({s, static_cast<float>(100.0 + s)});
    }
  }
  expect["lr"] = nlohmann::json::array();  // the START at step 6 drops lr at 6..10 too
  for (int s = 1; s <= 5; ++s) expect["lr"].push_back({s, static_cast<float>(1e-3 * s)});
  std::ofstream(fs::path(dir) / "expect.json") << expect.dump();
  const std::string script = (fs::path(SKEIN_SOURCE_DIR) / "tests" / "launch" / "tb_read.py").string();
  const std::string cmd = "python3 '" + script + "' '" + dir + "/tb' '" + dir + "/expect.json'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace skein
