// mixer.h — the token-mixer interface shared by SoftmaxAttention, LinearAttention and MoM,
// and the per-layer cache that generation carries between calls.
#pragma once
#include <vector>
#include "layers/module.h"
#include "layers/parallel.h"

namespace skein {

// What a mixer keeps between forward calls during generation. Training passes no cache.
struct MixerCache {
  int64_t pos = 0;             // tokens already seen (the next token's position)
  Tensor k, v;                 // softmax layers: [B, Hkv, pos, hd]
  std::vector<Tensor> states;  // linear layers: one [B, H, Dk, Dv] state (MoM: one per memory [+ shared])
  std::vector<Tensor> conv;    // short convs: the last K-1 inputs of each q/k/v stream [B, K-1, C]
};

class Mixer : public Module {
 public:
  // par: how the model is split over ranks (null: one process); must outlive the mixer.
  explicit Mixer(const ModelParallel* par = nullptr) : par_(par ? par : &single_process_parallel()) {}
  const ModelParallel& par() const { return *par_; }
  // x: [B, T, d] -> [B, T, d]. With a cache, continues from it and updates it.
  virtual Tensor forward(const Tensor& x, MixerCache* cache) = 0;
  // The mixer's auxiliary loss term of the last forward (undefined when none).
  virtual Tensor aux_loss() const { return Tensor(); }

 private:
  const ModelParallel* par_;
};

}  // namespace skein
