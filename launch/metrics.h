// metrics.h — where a run's numbers go: a JSONL line per logged step and a TensorBoard
// event file (scalars), both under the run folder; and the TFRecord/CRC32C pieces the
// event file is made of (exposed for tests).
#pragma once
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include "configs/config.h"

namespace skein {

class MetricsWriter {
 public:
  // Creates <run_dir>/metrics.jsonl and <run_dir>/tb/events.out.tfevents.<time>.<host>
  // as LogConfig enables them (appending to an existing metrics.jsonl on resume).
  MetricsWriter(const std::string& run_dir, const LogConfig& cfg);
  ~MetricsWriter();
  // One JSONL line {"step": s, "<tag>": value, ...} and one TensorBoard scalar per tag.
  void write(int64_t step, const std::map<std::string, double>& scalars);
  void flush();
 private:
  struct Impl;
  Impl* impl_;
};

// A run resumed at `step` (possibly an older checkpoint than the newest: --resume auto's
// fallback) continues its metrics: drops the lines of <run_dir>/metrics.jsonl whose step is
// beyond `step`, so the steps it trains again appear once. Atomic (a temporary file renamed);
// returns how many lines were dropped. A missing file is not an error.
int64_t truncate_metrics_after(const std::string& run_dir, int64_t step);

// TFRecord framing: u64 length, masked crc32c(length), data, masked crc32c(data).
std::string tfrecord(const std::string& data);
uint32_t crc32c(const void* data, size_t n);
uint32_t masked_crc32c(const void* data, size_t n);
// A serialized tensorflow.Event holding one scalar Summary value (simple_value).
std::string scalar_event(double wall_time, int64_t step, const std::string& tag, float value);
// The first Event of a file: file_version "brain.Event:2".
std::string file_version_event(double wall_time);

}  // namespace skein
