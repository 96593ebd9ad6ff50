// config.h — the typed experiment config: sections model, data, train, optim, parallel,
// checkpoint, log, distill, each a struct with its defaults in code (an empty YAML file is a valid
// run). configs/loader.h reads YAML + `--set section.key=value` overrides into it, checks
// every key, type and value, and writes it back out as YAML.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "layers/config.h"

namespace skein {

// One token file of a blend (data.paths) and its sampling weight.
struct DataPath {
  std::string path;
  double weight = 1.0;
  bool operator==(const DataPath&) const = default;
};
// As JSON {"path": ..., "weight": ...} (nlohmann::json finds it by ADL; no JSON dependency here).
template <class Json>
void to_json(Json& j, const DataPath& p) {
  j = Json{{"path", p.path}, {"weight", p.weight}};
}

struct DataConfig {
  // source: "hdf5" (a token file made by `skein prep`), "mqar" or "icl_regression" (synthetic)
  std::string source = "hdf5";
  std::string path = "data/corpus.h5";  // the HDF5 token file (source hdf5)
  // A blend of token files (source hdf5), each window drawn from file k with probability
  // weight_k / sum of weights (Megatron's data mixture); non-empty: replaces `path` (training
  // blends the files' train splits, validation their val splits).
  std::vector<DataPath> paths;
  int64_t seq_len = 256;                // tokens per sequence
  int64_t batch_size = 8;               // sequences per micro-batch per data-parallel rank
  uint64_t seed = 1234;                 // shuffle seed
  bool shuffle = true;
  // MQAR (zoology): key-value pairs then queries; vocab = model.vocab_size
  int64_t mqar_num_kv_pairs = 8;
  // > 0: training examples draw their pair count from {m, 2m, 4m, ...} and mqar_num_kv_pairs
  // (Zoology's mixture of easier settings); evaluation stays at mqar_num_kv_pairs
  int64_t mqar_min_kv_pairs = 0;
  // > 0 (with the mixture): the rung of m * 2^i pairs is an example of min(seq_len,
  // mqar_min_seq_len * 2^i) tokens, the target rung of seq_len (Zoology: 4 pairs in 64 tokens, 8
  // in 128, 16+ in 256)
  int64_t mqar_min_seq_len = 0;
  // > 0 (with the ladder): a curriculum, rung i for steps [i * interval, (i + 1) * interval), then
  // the last rung (the target), instead of the uniform mixture
  int64_t mqar_curriculum_interval = 0;
  // fill the non-query positions with random ids (zoology's generator default) or leave them 0
  bool mqar_random_non_queries = true;
  // in-context linear regression: x in R^dim, y = w·x (+ noise), n_points pairs per sequence
  int64_t icl_dim = 8;
  int64_t icl_points = 32;
  double icl_noise = 0.0;
  // Garg et al.'s curriculum: start at start_dim coordinates / start_points points, add
  // dim_step / points_step every interval steps, up to icl_dim / icl_points.
  bool icl_curriculum = false;
  int64_t icl_curriculum_start_dim = 2;
  int64_t icl_curriculum_start_points = 8;
  int64_t icl_curriculum_dim_step = 1;
  int64_t icl_curriculum_points_step = 2;
  int64_t icl_curriculum_interval = 100;
};

struct TrainConfig {
  int64_t steps = 1000;
  int64_t grad_accum = 1;        // micro-batches per optimizer step
  double clip_grad_norm = 1.0;   // 0: no clipping
  int64_t log_every = 10;
  int64_t eval_every = 200;      // 0: only at the end
  int64_t eval_batches = 8;
  std::string on_nan = "stop";   // stop | skip
  std::string run_dir = "runs/default";
  bool overwrite = false;        // a fresh run may replace another run's files in run_dir
  int64_t threads = 0;           // 0: cores / ranks on the node
  uint64_t seed = 1234;          // dropout and sampling
  int64_t sample_tokens = 200;   // generated at the end of a run (0: none)
  std::string sample_prompt = "";
  std::string device = "cpu";    // cpu | cuda | cuda:N (under mpirun "cuda" is the local rank's GPU)
  bool tf32 = false;             // cuda: f32 GEMMs through TF32 tensor cores
  std::string recompute = "none";  // none | mlp | full (activation recomputation, layers/model.h)
  bool fused_head = true;          // LM head + cross-entropy fused and chunked (no [N, V] logits)
  std::string precision = "f32";   // f32 | bf16-mixed (core/precision.h)
};

struct OptimConfig {
  std::string name = "adamw";    // adamw | sgd
  double lr = 3e-4;
  double min_lr = 3e-5;
  std::string schedule = "cosine";  // cosine | linear | constant | plateau (skein distill)
  // plateau: ReduceLROnPlateau on the validation loss (optim/plateau.h), LoLCATs' settings
  double plateau_factor = 0.1;
  int64_t plateau_patience = 10;
  double plateau_threshold = 1e-4;
  int64_t plateau_cooldown = 0;
  int64_t warmup = 100;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double momentum = 0.9;         // sgd
};

struct ParallelConfig {
  int64_t dp = 1;
  int64_t sp = 1;
  int64_t tp = 1;
  std::string softmax_sp = "ring";  // ring | lasp2h
  bool zero1 = false;
  bool overlap = true;              // communication overlapped with compute (launch/parallel_options.h)
  double bucket_mb = 25;            // data-parallel gradient bucket size, MiB
  // f32 | bf16: the dtype data-parallel gradients travel in. bf16 halves the bytes on the
  // wire: buckets rounded to bf16, summed with f32 accumulation, widened back before the
  // average (parallel/data_parallel.h: DataParallelOptions::reduce_dtype). f32 models only.
  std::string grad_reduce_dtype = "f32";
  bool bench_skip_comm = false;     // benchmark only: skip gradient / LASP-2 communication
  std::string backend = "auto";     // auto | mpi | nccl
};

struct CheckpointConfig {
  int64_t every = 0;   // steps between checkpoints (0: only at the end)
  int64_t keep = 3;    // newest K kept
  std::string dir = "";  // default <run_dir>/checkpoints
  std::string dtype = "f32";  // f32 | bf16: how model weights are stored (optimizer state stays f32)
};

struct LogConfig {
  bool jsonl = true;        // <run_dir>/metrics.jsonl
  bool tensorboard = true;  // <run_dir>/tb/events.out.tfevents.*
};

// `skein distill` (launch/distill.h): a softmax teacher into a linear / hybrid student. The
// data, train (run_dir, log_every, eval_every, eval_batches, threads, grad_accum, clip),
// optim (schedule, warmup, betas, eps, weight_decay), checkpoint and log sections apply as
// in training; the model section is the teacher's.
struct DistillConfig {
  std::string teacher = "";        // a skein checkpoint folder, or a checkpoints root (its newest)
  std::string method = "lolcats";  // liger | lolcats
  std::string layers = "";         // "": every softmax layer; else L (convert) / S (keep) a layer, repeated
  int64_t window = 64;             // sliding softmax window of Liger Attention / LoLCATs
  int64_t feature_dim = 64;        // lolcats: Hedgehog feature map width f (2f features)
  bool liger_attention = true;     // liger: mix sliding-window softmax into the gated recurrence
  int64_t stage1_steps = 200;      // lolcats: attention transfer (feature maps, layer-wise MSE)
  double stage1_lr = 1e-2;
  int64_t stage2_steps = 200;      // LoRA fine-tune with the LM loss
  double stage2_lr = 1e-3;
  int64_t lora_rank = 8;
  double lora_alpha = 16.0;
  double lora_dropout = 0.0;
  std::vector<std::string> lora_targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
  int64_t eval_context = 2048;     // prompt length of the teacher-vs-student generation benchmark
  int64_t eval_tokens = 32;        // tokens decoded after it
};

struct Config {
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  OptimConfig optim;
  ParallelConfig parallel;
  CheckpointConfig checkpoint;
  LogConfig log;
  DistillConfig distill;
};

}  // namespace skein
