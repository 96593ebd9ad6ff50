// tensor_parallel.cpp — tp_owned_params and clip_grad_norm_tp (parallel/tensor_parallel.h).
#include "parallel/tensor_parallel.h"
#include "parallel/data_parallel.h"

namespace skein {

std::vector<Tensor> tp_owned_params(const NamedTensors& params, const std::map<std::string, TpSplit>& splits,
                                    int tp_rank) {
  std::vector<Tensor> owned;
  for (const auto& [name, p] : params) {
    auto it = splits.find(name);
    SKEIN_CHECK(it != splits.end(), "tp_owned_params: parameter '", name, "' ", shape_str(p.shape()),
                " has no tensor-parallel split");
    if (it->second.sharded() || tp_rank == 0) owned.push_back(p);
  }
  return owned;
}

double clip_grad_norm_tp(const NamedTensors& params, const std::map<std::string, TpSplit>& splits,
                         Communicator& tp, double max_norm) {
  SKEIN_CHECK(max_norm > 0, "clip_grad_norm_tp: max_norm must be > 0, got ", max_norm);
  std::vector<Tensor> all;
  for (const auto& [name, p] : params) all.push_back(p);
  return clip_grad_norm_global(tp, all, tp_owned_params(params, splits, tp.rank()), max_norm);
}

}  // namespace skein
