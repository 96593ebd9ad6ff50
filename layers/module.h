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

class Module {
 public:
  virtual ~Module() = default;

  // Parameters in registration order, children's after their own, names dotted.
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  int64_t num_parameters() const;
  void zero_grad();

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // name -> tensor (the parameters themselves, shared, not copies).
  std::map<std::string, Tensor> state_dict() const;
  // Copies values into the existing parameters (so optimizers keep their handles).
  // strict: every parameter must be present and no extra keys; a shape mismatch names the
  // tensor and both shapes.
  void load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);

 protected:
  // Registers a parameter (makes it a leaf that requires grad) and returns it.
  Tensor register_parameter(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void collect(const std::string& prefix, NamedTensors& out) const;
  NamedTensors params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Init schemes: a [shape] tensor drawn from N(0, std²) (f32 unless given).
Tensor init_normal(const Shape& shape, double std, Generator& gen, DType dtype = DType::f32);

}  // namespace skein
