// bench_hf_load.cpp — the memory of loading a Hugging Face folder (load_hf_llama_model) against
// the size of its weight files: a bf16 checkpoint keeps its Linear weights bf16 and reads each
// tensor straight into its parameter, so the peak resident memory above the process's start
// should be about the file size (issue 14's target: <= 1.1x). Prints the weight files' bytes,
// the peak RSS growth (VmHWM after minus VmRSS before), their ratio and the load time.
// Usage: bench_hf_load <hf folder>   (make one: tools/make_hf_bench_model.py)
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include "core/allocator.h"
#include "launch/hf_llama.h"

namespace fs = std::filesystem;

namespace {
// A /proc/self/status field in bytes (VmRSS, VmHWM).
double status_bytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) * 1024.0;
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: bench_hf_load <hf folder>\n");
    return 2;
  }
  double file_bytes = 0;
  for (const auto& e : fs::directory_iterator(argv[1]))
    if (e.path().extension() == ".safetensors") file_bytes += static_cast<double>(e.file_size());
  const double before = status_bytes("VmRSS");
  const auto t0 = std::chrono::steady_clock::now();
  skein::Config cfg;
  auto model = skein::load_hf_llama_model(argv[1], &cfg);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double peak = status_bytes("VmHWM") - before, now = status_bytes("VmRSS") - before;
  std::printf("%s: %lld parameters, weight_dtype %s; weight files %.1f MB; RSS growth: peak %.1f MB (%.3fx the files), "
              "after %.1f MB (%.3fx); load %.2f s\n",
              argv[1], static_cast<long long>(model->num_parameters()), skein::dtype_name(cfg.model.weight_dtype),
              file_bytes / 1e6, peak / 1e6, peak / file_bytes, now / 1e6, now / file_bytes, seconds);
  const skein::AllocatorStats st = skein::cpu_allocator::stats();
  double exact = 0;  // the parameters' own bytes
  for (const auto& [name, p] : model->named_parameters()) exact += static_cast<double>(p.numel() * skein::dtype_size(p.dtype()));
  std::printf("parameters %.1f MB (%.3fx the files); allocator: live %.1f MB (size classes), reserved %.1f MB\n",
              exact / 1e6, exact / file_bytes, static_cast<double>(st.bytes_live) / 1e6,
              static_cast<double>(st.bytes_reserved) / 1e6);
  return 0;
}
