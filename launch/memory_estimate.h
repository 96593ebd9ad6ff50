// memory_estimate.h — the memory one training step needs on one rank, estimated from the config
// before the run allocates optimizer state and activations: parameters and gradients, optimizer
// state, the activations kept for backward, and the logits. Checked against the memory this
// process may use (MemAvailable, a cgroup limit, shared by the ranks on the node); when it does
// not fit, the error names the biggest consumers, their sizes and the keys that drive them.
//
// Activation bytes per token per layer (e = bytes of model.dtype) were measured with the
// allocator's peak on L, S, LS and M stacks (d 64..256, T 128..1024; tests/launch/
// test_memory_estimate.cpp): e * (12 d_model + 3 mlp_hidden) for L and S layers,
// e * (36 d_model + 3 mlp_hidden) for M layers; logits e * 3 * vocab per token (logits,
// probabilities, their gradient). The estimate is within 25% of the measured peak.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "configs/config.h"

namespace skein {

struct MemoryItem {
  std::string what;  // "activations"
  int64_t bytes;
  std::string keys;  // the config keys that drive it
};

struct MemoryEstimate {
  std::vector<MemoryItem> items;  // biggest first
  int64_t total = 0;
};

// params_on_rank: Module::num_parameters() of this rank's (tensor-parallel) model.
MemoryEstimate estimate_step_memory(const Config& cfg, int64_t params_on_rank);

// Bytes this process may still allocate: MemAvailable (/proc/meminfo), lowered to a cgroup
// v2 memory.max minus memory.current and to an address-space limit (`ulimit -v`) minus the
// process's virtual size where those are set, divided by the ranks on this node
// (OMPI_COMM_WORLD_LOCAL_SIZE). -1 when unknown.
int64_t available_memory_bytes();

// Throws skein::Error when est.total > available (available < 0: no check): "memory: one
// training step needs about 12.3 GiB on this rank, 8.0 GiB are available; biggest: activations
// 9.1 GiB (data.batch_size, data.seq_len, model.n_layers, ...), ...; lower ...".
void check_step_memory(const MemoryEstimate& est, int64_t available);

std::string format_bytes(int64_t bytes);  // "12.3 GiB", "512.0 MiB"

}  // namespace skein
