// progress.cpp — ProgressLine (see progress.h): moving tokens/s, ETA, and the in-place line
// ("\r" + erase-line, redrawn at most 10 times a second) on a terminal.
#include "launch/progress.h"
#include "core/backend.h"
#include <unistd.h>
#include <cmath>
#include <cstdarg>
#include <utility>
#include <vector>
#include "core/allocator.h"

namespace skein {

ConsoleOptions& console_options() {
  static ConsoleOptions o;
  return o;
}

std::string si_number(double v) {
  if (!std::isfinite(v)) return "?";
  const char* suffix[] = {"", "k", "M", "G", "T"};
  int i = 0;
  while (std::fabs(v) >= 999.5 && i < 4) v /= 1000, ++i;
  char buf[32];
  std::snprintf(buf, sizeof(buf), std::fabs(v) >= 99.95 || i == 0 ? "%.0f%s" : std::fabs(v) >= 9.995 ? "%.1f%s" : "%.2f%s",
                v, suffix[i]);
  return buf;
}

ProgressLine::ProgressLine(std::string label, int64_t total, int64_t start, Mode mode, FILE* out, int window)
    : label_(std::move(label)), total_(total), done_(start), out_(out), window_(window > 0 ? window : 1) {
  off_ = mode == Mode::off || out == nullptr;
  tty_ = !off_ && (mode == Mode::tty || (mode == Mode::automatic && ::isatty(::fileno(out))));
}

ProgressLine::~ProgressLine() { finish(); }

void ProgressLine::tick(int64_t done, double tokens, double seconds, const std::string& fields) {
  done_ = done;
  recent_.emplace_back(tokens, seconds);
  sum_tokens_ += tokens;
  sum_seconds_ += seconds;
  if (recent_.size() > window_) {
    sum_tokens_ -= recent_.front().first;
    sum_seconds_ -= recent_.front().second;
    recent_.pop_front();
  }
  if (off_ || !tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && done_ < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  std::fprintf(out_, "\r\033[K%s", status(fields).c_str());
  std::fflush(out_);
  drawn_ = true;
}

void ProgressLine::line(const std::string& text) {
  if (off_) return;
  if (drawn_) std::fputs("\r\033[K", out_);
  drawn_ = false;
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
}

void ProgressLine::finish() {
  if (off_ || !drawn_) return;
  std::fputs("\r\033[K", out_);
  std::fflush(out_);
  drawn_ = false;
}

double ProgressLine::tokens_per_s() const { return sum_seconds_ > 0 ? sum_tokens_ / sum_seconds_ : 0.0; }

double ProgressLine::seconds_per_step() const {
  return recent_.empty() ? 0.0 : sum_seconds_ / static_cast<double>(recent_.size());
}

double ProgressLine::eta_seconds() const {
  return static_cast<double>(std::max<int64_t>(0, total_ - done_)) * seconds_per_step();
}

std::string ProgressLine::duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long long t = std::llround(s);
  char buf[32];
  if (t < 60) std::snprintf(buf, sizeof(buf), "%llds", t);
  else if (t < 3600) std::snprintf(buf, sizeof(buf), "%lldm%02llds", t / 60, t % 60);
  else std::snprintf(buf, sizeof(buf), "%lldh%02lldm", t / 3600, (t % 3600) / 60);
  return buf;
}

std::string ProgressLine::status(const std::string& fields) const {
  char head[96];
  const double pct = total_ > 0 ? 100.0 * static_cast<double>(done_) / static_cast<double>(total_) : 100.0;
  std::snprintf(head, sizeof(head), "[%s] %lld/%lld %.0f%%", label_.c_str(), static_cast<long long>(done_),
                static_cast<long long>(total_), pct);
  std::string s = head;
  if (sum_tokens_ > 0) s += " | " + si_number(tokens_per_s()) + " tok/s";
  s += " | eta " + duration(eta_seconds());
  if (!fields.empty()) s += " | " + fields;
  return s;
}

std::string fmt(const char* format, ...) {
  va_list a, b;
  va_start(a, format);
  va_copy(b, a);
  const int n = std::vsnprintf(nullptr, 0, format, a);
  va_end(a);
  std::vector<char> buf(static_cast<size_t>(n > 0 ? n : 0) + 1);
  std::vsnprintf(buf.data(), buf.size(), format, b);
  va_end(b);
  return std::string(buf.data(), static_cast<size_t>(n > 0 ? n : 0));
}

StepStats step_stats(double flops_per_s, double peak_gflops, Device device) {
  StepStats s;
  s.device = device;
  s.gflops = std::isfinite(flops_per_s) ? flops_per_s / 1e9 : 0.0;
  s.pct_peak = peak_gflops > 0 ? 100 * s.gflops / peak_gflops : 0.0;
  const AllocatorStats m = backend(device).stats();  // the caching allocator of the run's device
  s.mem_mb = static_cast<double>(m.bytes_live) / 1048576.0;
  s.mem_peak_mb = static_cast<double>(m.bytes_peak) / 1048576.0;
  s.rss_mb = peak_rss_mb();
  return s;
}

std::string StepStats::text(double tokens_per_s) const {
  const bool cpu = device == Device::cpu;
  return fmt("%.0f tok/s | %.1f GFLOP/s (%.0f%% of %s) | %s %.0f MB (peak %.0f, rss %.0f)", tokens_per_s, gflops,
             pct_peak, cpu ? "sgemm" : "cuBLAS", cpu ? "mem" : "gpu mem", mem_mb, mem_peak_mb, rss_mb);
}

std::map<std::string, double> StepStats::scalars(std::map<std::string, double> base) const {
  base["gflops"] = gflops;
  base["pct_peak"] = pct_peak;
  base["mem_mb"] = mem_mb;
  base["mem_peak_mb"] = mem_peak_mb;
  base["rss_mb"] = rss_mb;
  return base;
}

}  // namespace skein
