// device_setup.h — where a run computes: train.device resolved to a device for this rank (under
// mpirun "cuda" is the node-local rank's GPU), batches moved there, state dicts brought home.
#pragma once
#include <map>
#include <string>
#include "configs/config.h"
#include "core/tensor.h"
#include "data/loader.h"

namespace skein {

// This process's node-local rank from the launcher's environment (Open MPI, MPICH, SLURM), else
// `world_rank`.
int local_rank_from_env(int world_rank);
// Selects the device of train.device (and TF32 from train.tf32); errors name the key.
Device setup_device(const Config& cfg, int world_rank);
// The batch on `device` (a no-op when it is there). Host-side counts should be taken before.
Batch batch_to(const Batch& b, Device device);
// Every tensor copied to host memory (what checkpoints write).
std::map<std::string, Tensor> to_host(const std::map<std::string, Tensor>& state);
}  // namespace skein
