// progress.h — the console of long loops (train, distill, eval, sweep): a progress line with
// the step, the percentage, the moving tokens/s and the ETA, redrawn in place on a terminal;
// in a log file (stdout not a terminal) nothing is redrawn and only the permanent lines
// (the step lines printed every train.log_every steps) appear, as plain lines.
//
//   ProgressLine bar("train", cfg.train.steps, start_step);
//   bar.tick(step + 1, tokens_this_step, seconds_this_step, "loss 2.314");  // redraws on a TTY
//   bar.line(step_line);   // a permanent line (clears the in-place one first)
//   bar.finish();          // clears the in-place line
//
// tokens/s is a moving average: the tokens of the last `window` steps over their wall time.
// The ETA is the remaining steps times the moving seconds per step.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <string>
#include "core/dtype.h"

namespace skein {

// Console switches set by the command line (skein train/distill --print-config).
struct ConsoleOptions {
  bool print_config = false;  // print the resolved config (it is always written to the run folder)
};
ConsoleOptions& console_options();

class ProgressLine {
 public:
  enum class Mode { automatic, tty, plain, off };  // automatic: tty when `out` is a terminal
  // `label`: "train", "eval", ...; steps run from `start` to `total`.
  ProgressLine(std::string label, int64_t total, int64_t start = 0, Mode mode = Mode::automatic, FILE* out = stdout,
           int window = 20);
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // Step `done` (1-based count of finished steps) took `seconds` and processed `tokens`
  // (0 when the loop has no tokens); `fields` is appended to the in-place line.
  void tick(int64_t done, double tokens, double seconds, const std::string& fields = "");
  // Prints `text` (+ newline) as a permanent line, clearing the in-place line first.
  void line(const std::string& text);
  // Clears the in-place line (on a TTY); idempotent.
  void finish();

  double tokens_per_s() const;    // moving average; 0 before the first tick
  double seconds_per_step() const;
  double eta_seconds() const;     // remaining steps x moving seconds per step
  bool tty() const { return tty_; }
  // "12s", "3m05s", "2h07m"; "?" for a negative or non-finite value.
  static std::string duration(double seconds);
  // The in-place text: "[train] 123/1000 12% | 5.2k tok/s | eta 3m05s | <fields>".
  std::string status(const std::string& fields = "") const;

 private:
  std::string label_;
  int64_t total_, done_;
  bool tty_, off_;
  FILE* out_;
  size_t window_;
  std::deque<std::pair<double, double>> recent_;  // (tokens, seconds) of the last steps
  double sum_tokens_ = 0, sum_seconds_ = 0;
  bool drawn_ = false;  // an in-place line is on screen
  std::chrono::steady_clock::time_point last_draw_{};
};

// "5.2k", "12.3M": a rate with an SI suffix (3 significant digits).
std::string si_number(double v);
// printf into a std::string.
std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));

// The throughput and memory part of a step line, and the same numbers for metrics.jsonl /
// TensorBoard (README "Reading the step line"):
//   gflops      model FLOPs per second on this rank: 3 x model_flops_per_token (forward +
//               backward = 2 x forward) x tokens, over the moving seconds per step
//   pct_peak    gflops as % of this machine's sgemm rate measured at start (an MFU against
//               the BLAS peak, not the datasheet)
//   mem_mb      bytes live in skein's CPU allocator now; mem_peak_mb its high-water mark;
//   rss_mb      the process's peak resident set size (allocator + BLAS + everything else)
struct StepStats {
  double gflops = 0, pct_peak = 0, mem_mb = 0, mem_peak_mb = 0, rss_mb = 0;
  Device device = Device::cpu;
  // "1234 tok/s | 1.2 GFLOP/s (3% of sgemm) | mem 12 MB (peak 40, rss 300)"; on a GPU
  // "(..% of cuBLAS) | gpu mem .." (the device's caching allocator)
  std::string text(double tokens_per_s) const;
  // `base` plus gflops, pct_peak, mem_mb, mem_peak_mb, rss_mb.
  std::map<std::string, double> scalars(std::map<std::string, double> base) const;
};
// `flops_per_s`: model FLOP/s on this rank; `peak_gflops`: the GEMM rate of `device` (0: unknown).
StepStats step_stats(double flops_per_s, double peak_gflops, Device device = Device::cpu);

}  // namespace skein
