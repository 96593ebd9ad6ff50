// distill.h — `skein distill`: linearise a trained softmax-attention model (the teacher) into
// a linear or hybrid student, per the config's distill section, then evaluate both side by side.
//   liger:   convert (no new parameters) -> stage 2: LoRA with the LM loss
//   lolcats: convert (Hedgehog feature maps + sliding window) -> stage 1: attention transfer
//            (feature maps only, layer-wise MSE on the teacher's activations) -> stage 2: LoRA
// Each stage logs like training (stdout, metrics.jsonl, TensorBoard), checkpoints every
// checkpoint.every steps and resumes (`--resume auto`). The run ends by merging the adapters,
// exporting the student (<run_dir>/student/ckpt-NNNNNN, loadable with load_student), and
// printing validation perplexity, recovery (teacher ppl / student ppl) and generation tokens/s
// and memory at distill.eval_context tokens for teacher and student (<run_dir>/distill.json).
// The teacher is a skein checkpoint or a Hugging Face Llama / Mistral / Qwen2 folder
// (launch/hf_llama.h). Under mpirun with parallel.dp > 1 every rank holds teacher and student,
// draws its shard of each global batch and the gradients are averaged (rank 0 logs, checkpoints
// and exports); train.device picks the device. LoRA targets may include the MLP
// (gate/up/down_proj); optim.schedule=plateau runs ReduceLROnPlateau on stage 2's val loss.
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "configs/config.h"
#include "layers/model.h"

namespace skein {

// Decoding speed and memory of one model after a prompt (greedy, no grad).
struct GenerationBench {
  double prefill_tokens_per_s = 0;
  double decode_tokens_per_s = 0;
  double cache_mb = 0;  // what the per-layer caches hold after decoding (KV caches, states)
  double peak_mb = 0;   // allocator high-water mark above what was live before the prompt
};

struct DistillSummary {
  double teacher_val_loss = 0, teacher_val_ppl = 0;
  double student_val_loss = 0, student_val_ppl = 0;
  double recovery = 0;  // teacher_val_ppl / student_val_ppl (1 = full recovery)
  GenerationBench teacher_gen, student_gen;
  std::string run_dir, student_checkpoint;
};

// The teacher named by cfg.distill.teacher: a Hugging Face Llama folder (config.json), a
// checkpoint folder, or a checkpoints root or run folder whose newest checkpoint is taken;
// cfg.model becomes the teacher's model section.
std::unique_ptr<HybridLM> load_teacher(Config& cfg, bool verbose = true);  // verbose: print what it loaded
// A copy of `teacher` with the layers of cfg.distill.layers converted by cfg.distill.method
// (no adapters yet); `converted` receives their indices.
std::unique_ptr<HybridLM> make_student(const HybridLM& teacher, const Config& cfg, std::vector<int64_t>* converted);
// An exported student (<run_dir>/student/ckpt-NNNNNN): its config's model and distill
// sections rebuild the architecture; the parameters are the merged ones.
std::unique_ptr<HybridLM> load_student(const std::string& dir, Config* cfg = nullptr);

// Runs the prompt through `model`, then decodes new_tokens greedily, timing both phases.
GenerationBench bench_generation(HybridLM& model, const std::vector<int64_t>& prompt, int64_t new_tokens);

// The whole recipe. resume: "" (fresh), "auto" (newest checkpoint of the run) or a folder.
DistillSummary distill(Config cfg, const std::string& resume = "");

}  // namespace skein
