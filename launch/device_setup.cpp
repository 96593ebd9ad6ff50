// device_setup.cpp — train.device for this rank, batches to the device, state dicts to the host.
#include "launch/device_setup.h"
#include <cstdlib>
#include "core/backend.h"

namespace skein {

int local_rank_from_env(int world_rank) {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    if (const char* v = std::getenv(var)) {
      try {
        return std::stoi(v);
      } catch (const std::exception&) {
        throw Error(detail::concat("train.device: environment variable ", var, "='", v, "' is not a rank"));
      }
    }
  }
  return world_rank;
}

Device setup_device(const Config& cfg, int world_rank) {
  return select_device(cfg.train.device, local_rank_from_env(world_rank), cfg.train.tf32);
}

Batch batch_to(const Batch& b, Device device) {
  return {b.inputs.defined() ? b.inputs.to(device) : b.inputs, b.targets.defined() ? b.targets.to(device) : b.targets};
}

std::map<std::string, Tensor> to_host(const std::map<std::string, Tensor>& state) {
  std::map<std::string, Tensor> out;
  for (const auto& [k, t] : state) out.emplace(k, t.defined() ? t.detach().to(Device::cpu) : t);
  return out;
}

}  // namespace skein
