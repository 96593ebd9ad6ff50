// memory_estimate.cpp — the per-rank memory of a training step (see memory_estimate.h).
#include "launch/memory_estimate.h"
#include <sys/resource.h>
#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include "core/dtype.h"
#include "core/error.h"

namespace skein {
namespace {

// A number read from the first line of a file, or -1 ("max" and missing files too).
int64_t read_number(const std::string& path) {
  std::ifstream f(path);
  std::string word;
  if (!(f >> word) || word == "max") return -1;
  try {
    return std::stoll(word);
  } catch (...) {
    return -1;
  }
}

}  // namespace

std::string format_bytes(int64_t bytes) {
  char buf[32];
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f GiB", b / (1024.0 * 1024 * 1024));
  else std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
  return buf;
}

MemoryEstimate estimate_step_memory(const Config& cfg, int64_t params_on_rank) {
  const ModelConfig& m = cfg.model;
  const auto e = static_cast<int64_t>(dtype_size(m.dtype));
  const int64_t tokens = cfg.data.batch_size * (cfg.data.seq_len / std::max<int64_t>(1, cfg.parallel.sp));
  // Floats per token kept for backward, summed over the layers: the mixer's, and the MLP's two
  // projection outputs (swiglu_down recomputes its hidden). train.recompute keeps only the MLP
  // input (mlp) or the block input (full) and re-builds one block at a time in backward.
  int64_t per_token_layers = 0, largest_block = 0;
  for (int64_t i = 0; i < m.n_layers; ++i) {
    const int64_t mixer = (m.layer_kind(i) == 'M' ? 36 : 12) * m.d_model, mlp = 2 * m.mlp_hidden / cfg.parallel.tp;
    largest_block = std::max(largest_block, mixer + mlp);
    if (cfg.train.recompute == "full") per_token_layers += m.d_model;
    else if (cfg.train.recompute == "mlp") per_token_layers += mixer + m.d_model;
    else per_token_layers += mixer + mlp;
  }
  if (cfg.train.recompute == "full") per_token_layers += largest_block;
  // The fused LM head (train.fused_head, tp 1) holds one chunk of ~16 MB of logits (and its
  // gradient) plus the head's gradients dh [tokens, d] and dW [V, d], never [tokens, V].
  const bool fused = cfg.train.fused_head && cfg.parallel.tp == 1;
  const int64_t logits_bytes = fused ? 2 * std::min<int64_t>(e * tokens * m.vocab_size, int64_t{16} << 20) +
                                           e * (tokens + m.vocab_size) * m.d_model
                                     : 3 * e * tokens * m.vocab_size;
  const int64_t P = params_on_rank;
  const bool sgd = cfg.optim.name == "sgd";
  const int64_t opt_shards = cfg.parallel.zero1 ? cfg.parallel.dp * cfg.parallel.sp : 1;
  MemoryEstimate est;
  est.items = {
      {"activations kept for backward", e * tokens * per_token_layers,
       "data.batch_size, data.seq_len, model.n_layers, model.d_model, model.mlp_hidden, train.recompute"},
      {"logits and their gradient", logits_bytes, "data.batch_size, data.seq_len, model.vocab_size, train.fused_head"},
      {"parameters and gradients", 2 * e * P, "model.d_model, model.n_layers, model.mlp_hidden, model.vocab_size"},
      {sgd ? "optimizer state (SGD momentum)" : "optimizer state (AdamW moments)", (sgd ? 1 : 2) * e * P / opt_shards,
       "optim.name, parallel.zero1, and the model size"},
  };
  std::sort(est.items.begin(), est.items.end(), [](const MemoryItem& a, const MemoryItem& b) { return a.bytes > b.bytes; });
  for (const auto& it : est.items) est.total += it.bytes;
  return est;
}

int64_t available_memory_bytes() {
  int64_t avail = -1;
  std::ifstream f("/proc/meminfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream is(line.substr(13));
      int64_t kb = 0;
      if (is >> kb) avail = kb * 1024;
    }
  const int64_t limit = read_number("/sys/fs/cgroup/memory.max"), used = read_number("/sys/fs/cgroup/memory.current");
  if (limit > 0 && used >= 0) avail = avail < 0 ? limit - used : std::min(avail, limit - used);
  rlimit as{};  // `ulimit -v`: the address space left under it (virtual size: conservative)
  if (::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    std::ifstream statm("/proc/self/statm");
    int64_t pages = 0;
    if (statm >> pages) {
      const int64_t left = static_cast<int64_t>(as.rlim_cur) - pages * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
      avail = avail < 0 ? left : std::min(avail, left);
    }
  }
  if (avail < 0) return -1;
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  const int64_t ranks = local ? std::max<int64_t>(1, std::atoll(local)) : 1;
  return avail / ranks;
}

void check_step_memory(const MemoryEstimate& est, int64_t available) {
  if (available < 0 || est.total <= available) return;
  std::string biggest;
  for (size_t i = 0; i < est.items.size() && i < 3; ++i)
    biggest += (i ? "; " : "") + est.items[i].what + " " + format_bytes(est.items[i].bytes) + " (" + est.items[i].keys + ")";
  throw Error(detail::concat("memory: one training step needs about ", format_bytes(est.total),
                             " on this rank, but ", format_bytes(available), " are available; biggest: ", biggest,
                             ". Lower data.batch_size (train.grad_accum keeps the global batch) or data.seq_len, "
                             "or split the work: parallel.sp, parallel.tp, parallel.zero1"));
}

}  // namespace skein
