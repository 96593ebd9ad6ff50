// checkpoint_verify.h — what makes a checkpoint trustworthy beyond its per-dataset CRC32C
// (launch/h5_io.h): a checksum over its metadata (step, config, counters), finite weights,
// and a config that computes the same function as the run resuming from it.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include "configs/config.h"
#include "core/tensor.h"

namespace skein {

// CRC32C of the step, the config text and every counter (name and value, in name order).
uint32_t meta_checksum(int64_t step, const std::string& config_yaml, const std::map<std::string, int64_t>& counters);

// The index of the first NaN or infinity of a floating tensor, or of the first value whose
// magnitude exceeds max_abs; -1 when none (also for integer tensors).
int64_t first_non_finite(const Tensor& t, double max_abs = INFINITY);

// Imported weights beyond this magnitude are damage (a flipped exponent bit gives ~1e38; their
// squares overflow f32): save_checkpoint refuses them like NaN in the model group.
inline constexpr double kMaxWeight = 1e20;

// "" when every tensor is finite (and within max_abs); else "<group> tensor '<name>' [shape]
// holds nan at element i".
std::string non_finite_report(const std::string& group, const std::map<std::string, Tensor>& tensors,
                              double max_abs = INFINITY);

// The model keys whose change alters the function a checkpoint computes (every model.* key but
// the initialisation ones: seed, init_std, scaled_residual_init, and chunk_size, which only
// reorders the sums). A checkpoint's config (its YAML text, `source` for messages) against the
// config resuming from it: the first such key that differs is an error naming it and both
// values; other keys (train.steps, data, optim...) may change.
void check_resume_config(const std::string& stored_yaml, const Config& now, const std::string& source);

}  // namespace skein
