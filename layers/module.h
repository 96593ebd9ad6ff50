// module.h — the Module base: named parameters and children, dotted names
// (`blocks.3.mixer.q_proj.weight`, the checkpoint keys), train/eval, parameter count,
// state dict to and from a name→tensor map, and the init schemes.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>
#include "core/ops.h"

namespace skein {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// How a parameter is laid out over tensor-parallel ranks: dim = the dimension split in equal
// contiguous blocks (rank r holds block r), -1 = replicated (every rank holds all of it);
// full = the global, unpadded size along dim (the vocabulary is padded to a multiple of
// tp_size: the padded rows exist only in shards and are dropped when shards are joined).
struct TpSplit {
  int dim = -1;
  int64_t full = 0;
  bool sharded() const { return dim >= 0; }
};

class Module {
 public:
  virtual ~Module() = default;

  // Parameters in registration order, children's after their own, names dotted.
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  int64_t num_parameters() const;
  void zero_grad();

  // Moves every parameter and buffer (and gradient) of this module and its children to `device`,
  // in place: every handle to a parameter — the optimizer's, a layer's member — sees the move.
  void to(Device device);
  Device device() const;  // the device of the first parameter (cpu when there is none)

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // name -> tensor (the parameters themselves, shared, not copies).
  std::map<std::string, Tensor> state_dict() const;
  // name -> tensor-parallel layout, for every parameter (replicated ones have dim -1).
  std::map<std::string, TpSplit> tp_splits() const;
  // Copies values into the existing parameters (so optimizers keep their handles).
  // strict: every parameter must be present and no extra keys; a shape mismatch names the
  // tensor and both shapes.
  void load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);

 protected:
  // Registers a parameter (makes it a leaf that requires grad) and returns it. `split` says
  // how it is sharded over tensor-parallel ranks (default: replicated).
  Tensor register_parameter(const std::string& name, Tensor t, TpSplit split = {});
  // A constant tensor the module computes with (not a parameter, not in the state dict) that
  // must follow the module to its device.
  void register_buffer(const std::string& name, const Tensor& t);
  // Replaces the tensor of parameter `name` (same shape; e.g. its storage dtype) and returns
  // the new leaf; requires_grad as given.
  Tensor replace_parameter(const std::string& name, const Tensor& t, bool requires_grad);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 public:
  // Swaps the child registered as `name` (a direct child) for `m`, keeping its place in the
  // parameter order; an unknown name is an error naming it. (Distillation swaps mixers.)
  void replace_module(const std::string& name, std::shared_ptr<Module> m);

 protected:

 private:
  void collect(const std::string& prefix, NamedTensors& out) const;
  void collect_splits(const std::string& prefix, std::map<std::string, TpSplit>& out) const;
  NamedTensors params_;
  NamedTensors buffers_;
  std::vector<TpSplit> splits_;  // parallel to params_
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Init schemes: a [shape] tensor drawn from N(0, std²) (f32 unless given).
Tensor init_normal(const Shape& shape, double std, Generator& gen, DType dtype = DType::f32);

}  // namespace skein
