// optimizer.h — the Optimizer base: a list of named parameters, their per-parameter state
// buffers and counters, step / zero_grad / learning rate, and the state dict that a
// checkpoint saves. AdamW (optim/adamw.h) and SGD (optim/sgd.h) derive from it.
//
// State dict keys: "<slot>.<param name>" per parameter (e.g. "exp_avg.blocks.3.mixer.q_proj.weight",
// shaped like the parameter; or a 0-d i64 counter such as "step.<param name>"), plus the
// scalar "step" (0-d i64: how many times step() has run).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>
#include "core/tensor.h"

namespace skein {

// (dotted checkpoint name, parameter) pairs, as Module::named_parameters() yields them.
using NamedParams = std::vector<std::pair<std::string, Tensor>>;

// Which parameters get weight decay: called once per parameter at construction.
using DecayFilter = std::function<bool(const std::string& name, const Tensor& param)>;
// The default filter: decay matrices and higher (dim >= 2); never 1-D parameters (norm
// gains, biases) nor 0-d ones. Wrap it to override by name, e.g.
//   [](auto& n, auto& p) { return n.ends_with("embed.weight") ? false : decay_by_dim(n, p); }
bool decay_by_dim(const std::string& name, const Tensor& param);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Updates every parameter that has a gradient (those without one are skipped and keep
  // their state untouched), in place and under NoGradGuard, then counts the step.
  void step();
  // Drops every parameter's gradient (the next backward allocates fresh ones).
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr);
  int64_t step_count() const { return step_count_; }
  const NamedParams& params() const { return params_; }
  const char* name() const { return name_; }

  // The tensors share storage with the live state (no copy): write them out before the
  // next step(), or clone them. Counters are fresh 0-d i64 tensors.
  std::map<std::string, Tensor> state_dict() const;
  // Loads a dict with exactly the keys of state_dict() and matching shapes (float dtypes
  // may differ and are converted). Everything is checked before anything is written; the
  // error names the first missing, unexpected or mis-shaped key (with both shapes).
  void load_state_dict(const std::map<std::string, Tensor>& state);

 protected:
  // params: contiguous CPU f32/f64 tensors, each listed once, with distinct names.
  Optimizer(NamedParams params, double lr, const char* name);

  // Declares a buffer "<slot>.<param name>" per parameter, shaped like it and zero-filled;
  // returns the slot id for buffer().
  int add_buffer(const std::string& slot);
  // Declares a per-parameter counter "<slot>.<param name>" starting at 0; returns its id.
  int add_counter(const std::string& slot);
  const Tensor& buffer(int slot, size_t param) const { return buffers_[slot].second[param]; }
  int64_t& counter(int slot, size_t param) { return counters_[slot].second[param]; }

  // Applies one update to params()[i] given its gradient (contiguous, same shape and dtype
  // as the parameter). Called under NoGradGuard; step_count() is not yet incremented.
  virtual void update(size_t i, const Tensor& param, const Tensor& grad) = 0;

 private:
  const char* name_;
  NamedParams params_;
  double lr_;
  int64_t step_count_ = 0;
  std::vector<std::pair<std::string, std::vector<Tensor>>> buffers_;
  std::vector<std::pair<std::string, std::vector<int64_t>>> counters_;
};

}  // namespace skein
