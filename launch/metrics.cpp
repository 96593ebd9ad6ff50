// metrics.cpp — MetricsWriter (metrics.jsonl + a TensorBoard event file) and the pieces the
// event file is made of: CRC-32C, TFRecord framing, hand-encoded tensorflow.Event protobufs.
//
// JSONL: one object per write, {"step": <int>, "<tag>": <number>, ...}; numbers are the
// shortest text that reads back to the same double (std::to_chars); NaN and ±Inf have no JSON
// spelling and are written as null (every JSON parser reads that; a reader that wants a number
// treats null as "not finite"). Each write is flushed, so `tail -f` and a crash lose nothing.
//
// TensorBoard: <run_dir>/tb/events.out.tfevents.<%010d seconds>.<host>[.<k>] (a new file per
// writer; TensorBoard merges the files of a folder). It starts with Event{file_version
// "brain.Event:2"}; before the first scalars it writes Event{step=S, session_log{START}}, which
// makes TensorBoard drop points at steps >= S left over from an earlier (resumed) writer.
// reference: ../shared/research/ecosystem.md §3 (record_writer.py, event.proto, summary.proto,
//            event_accumulator.py _CheckForRestartAndMaybePurge).
#include "launch/metrics.h"
#include <unistd.h>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>
#include "core/error.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected Castagnoli
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// --- protobuf wire format (only what Event/Summary need) ---
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_key(std::string& out, uint32_t field, WireType wt) { put_varint(out, (uint64_t{field} << 3) | wt); }
void put_le(std::string& out, uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}
void put_double(std::string& out, uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  put_key(out, field, kFixed64);
  put_le(out, bits, 8);
}
void put_float(std::string& out, uint32_t field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  put_key(out, field, kFixed32);
  put_le(out, bits, 4);
}
void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out += bytes;
}

// Event fields 1 and 2, omitted at their defaults as proto3 serializers do (+0.0, 0).
std::string event_header(double wall_time, int64_t step) {
  std::string e;
  uint64_t bits;
  std::memcpy(&bits, &wall_time, 8);
  if (bits != 0) put_double(e, 1, wall_time);
  if (step != 0) {
    put_key(e, 2, kVarint);
    put_varint(e, static_cast<uint64_t>(step));  // int64: negatives take 10 bytes
  }
  return e;
}

// Event{wall_time, step, summary{value{tag, simple_value} ...}}: several scalars, one Event.
std::string summary_event(double wall_time, int64_t step, const std::vector<std::pair<std::string, float>>& values) {
  std::string summary;
  for (const auto& [tag, v] : values) {
    std::string value;
    if (!tag.empty()) put_bytes(value, 1, tag);  // Summary.Value.tag
    put_float(value, 2, v);                      // oneof member: always written
    put_bytes(summary, 1, value);                // Summary.value
  }
  std::string e = event_header(wall_time, step);
  put_bytes(e, 5, summary);  // oneof member: always written, even when empty
  return e;
}

// Event{wall_time, step, session_log{status: START}}.
std::string session_start_event(double wall_time, int64_t step) {
  std::string e = event_header(wall_time, step);
  put_bytes(e, 7, std::string("\x08\x01", 2));
  return e;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string h(buf);
  for (char& c : h)
    if (c == '/' || c == '\\') c = '_';
  return h;
}

void append_json_string(std::string& out, const std::string& s) {
  out.push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

void append_json_number(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest round-trip form
  SKEIN_ASSERT(r.ec == std::errc(), "to_chars failed");
  out.append(buf, r.ptr);
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = kCrc32cTable[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

std::string tfrecord(const std::string& data) {
  std::string r;
  r.reserve(data.size() + 16);
  put_le(r, data.size(), 8);
  put_le(r, masked_crc32c(r.data(), 8), 4);
  r += data;
  put_le(r, masked_crc32c(data.data(), data.size()), 4);
  return r;
}

std::string scalar_event(double wall_time, int64_t step, const std::string& tag, float value) {
  return summary_event(wall_time, step, {{tag, value}});
}

std::string file_version_event(double wall_time) {
  std::string e = event_header(wall_time, 0);
  put_bytes(e, 3, "brain.Event:2");
  return e;
}

struct MetricsWriter::Impl {
  std::ofstream jsonl;
  std::ofstream events;
  std::string jsonl_path, events_path;
  bool started = false;  // session_log START written
};

MetricsWriter::MetricsWriter(const std::string& run_dir, const LogConfig& cfg) : impl_(new Impl) {
  try {
    if (cfg.jsonl) {
      fs::create_directories(run_dir);
      impl_->jsonl_path = (fs::path(run_dir) / "metrics.jsonl").string();
      impl_->jsonl.open(impl_->jsonl_path, std::ios::binary | std::ios::app);
      SKEIN_CHECK(impl_->jsonl, "metrics: cannot open '", impl_->jsonl_path, "' for appending");
    }
    if (cfg.tensorboard) {
      const fs::path tb = fs::path(run_dir) / "tb";
      fs::create_directories(tb);
      char stamp[32];
      std::snprintf(stamp, sizeof(stamp), "%010lld", static_cast<long long>(std::time(nullptr)));
      const std::string base = std::string("events.out.tfevents.") + stamp + "." + host_name();
      fs::path p = tb / base;
      for (int k = 1; fs::exists(p); ++k) p = tb / (base + "." + std::to_string(k));  // never clobber
      impl_->events_path = p.string();
      impl_->events.open(p, std::ios::binary | std::ios::trunc);
      SKEIN_CHECK(impl_->events, "metrics: cannot create '", impl_->events_path, "'");
      impl_->events << tfrecord(file_version_event(now_seconds()));
      impl_->events.flush();
    }
  } catch (...) {
    delete impl_;
    throw;
  }
}

MetricsWriter::~MetricsWriter() {
  if (impl_->jsonl.is_open()) impl_->jsonl.flush();
  if (impl_->events.is_open()) impl_->events.flush();
  delete impl_;
}

void MetricsWriter::write(int64_t step, const std::map<std::string, double>& scalars) {
  if (impl_->jsonl.is_open()) {
    std::string line = "{\"step\": " + std::to_string(step);
    for (const auto& [tag, v] : scalars) {
      line += ", ";
      append_json_string(line, tag);
      line += ": ";
      append_json_number(line, v);
    }
    line += "}\n";
    impl_->jsonl << line;
    impl_->jsonl.flush();
    SKEIN_CHECK(impl_->jsonl, "metrics: writing '", impl_->jsonl_path, "' failed");
  }
  if (impl_->events.is_open() && !scalars.empty()) {
    const double t = now_seconds();
    if (!impl_->started) {
      impl_->events << tfrecord(session_start_event(t, step));
      impl_->started = true;
    }
    std::vector<std::pair<std::string, float>> values;
    values.reserve(scalars.size());
    for (const auto& [tag, v] : scalars) values.emplace_back(tag, static_cast<float>(v));
    impl_->events << tfrecord(summary_event(t, step, values));
    impl_->events.flush();
    SKEIN_CHECK(impl_->events, "metrics: writing '", impl_->events_path, "' failed");
  }
}

void MetricsWriter::flush() {
  if (impl_->jsonl.is_open()) impl_->jsonl.flush();
  if (impl_->events.is_open()) impl_->events.flush();
}

int64_t truncate_metrics_after(const std::string& run_dir, int64_t step) {
  const fs::path path = fs::path(run_dir) / "metrics.jsonl";
  std::ifstream in(path);
  if (!in) return 0;
  const fs::path tmp = fs::path(run_dir) / "metrics.jsonl.tmp";
  std::ofstream out(tmp, std::ios::trunc);
  SKEIN_CHECK(out.good(), "metrics: cannot write ", tmp.string());
  int64_t dropped = 0;
  std::string line;
  while (std::getline(in, line)) {
    const size_t at = line.find("\"step\": ");
    int64_t s = -1;
    if (at != std::string::npos) {
      const char* b = line.data() + at + 8;
      std::from_chars(b, line.data() + line.size(), s);
    }
    if (s > step) {
      ++dropped;
      continue;
    }
    out << line << "\n";
  }
  out.close();
  SKEIN_CHECK(out.good(), "metrics: writing ", tmp.string(), " failed");
  fs::rename(tmp, path);
  return dropped;
}

}  // namespace skein
