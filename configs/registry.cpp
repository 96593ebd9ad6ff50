// registry.cpp — the schema table (see registry.h): every config key once, with its rule and doc.
#include "configs/registry.h"
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include "core/error.h"
#include "layers/lora.h"

namespace skein {
namespace {

template <class T> constexpr KeyType type_of();
template <> constexpr KeyType type_of<int64_t>() { return KeyType::Int; }
template <> constexpr KeyType type_of<uint64_t>() { return KeyType::UInt; }
template <> constexpr KeyType type_of<double>() { return KeyType::Float; }
template <> constexpr KeyType type_of<bool>() { return KeyType::Bool; }
template <> constexpr KeyType type_of<std::string>() { return KeyType::String; }
template <> constexpr KeyType type_of<std::vector<std::string>>() { return KeyType::StringList; }
template <> constexpr KeyType type_of<std::vector<DataPath>>() { return KeyType::PathList; }

// A per-key rule: its words and its test.
struct Rule {
  std::string text;
  std::function<bool(const ConfigValue&)> ok;
};

template <class T>
Rule rule(std::string text, std::function<bool(const T&)> ok) {
  return {std::move(text), [ok](const ConfigValue& v) { return ok(std::get<T>(v)); }};
}
Rule any() { return {"", [](const ConfigValue&) { return true; }}; }
Rule at_least(int64_t lo) {
  return rule<int64_t>("must be >= " + std::to_string(lo), [lo](const int64_t& v) { return v >= lo; });
}
Rule positive() {  // finite and > 0
  return rule<double>("must be finite and > 0", [](const double& v) { return std::isfinite(v) && v > 0; });
}
Rule non_negative() {
  return rule<double>("must be finite and >= 0", [](const double& v) { return std::isfinite(v) && v >= 0; });
}
Rule below_one() {  // momentum-like coefficients
  return rule<double>("must lie in [0, 1)", [](const double& v) { return v >= 0 && v < 1; });
}
Rule not_empty() {
  return rule<std::string>("must not be empty", [](const std::string& v) { return !v.empty(); });
}
std::string join(const std::vector<std::string>& xs, const char* sep) {
  std::string s;
  for (size_t i = 0; i < xs.size(); ++i) s += (i ? sep : "") + xs[i];
  return s;
}
Rule one_of(std::vector<std::string> choices) {
  std::string text = "must be one of " + join(choices, ", ");
  return rule<std::string>(text, [choices](const std::string& v) {
    for (const auto& c : choices) if (v == c) return true;
    return false;
  });
}
// "cpu", "cuda" or "cuda:N" (N a non-negative integer).
Rule device_name_rule() {
  return rule<std::string>("must be cpu, cuda or cuda:N", [](const std::string& v) {
    if (v == "cpu" || v == "cuda") return true;
    if (v.rfind("cuda:", 0) != 0 || v.size() == 5) return false;
    for (size_t i = 5; i < v.size(); ++i) if (v[i] < '0' || v[i] > '9') return false;
    return true;
  });
}
// Each entry one of `choices` or "" (per-layer overrides where "" keeps the default).
Rule each_one_of_or_empty(std::vector<std::string> choices) {
  std::string text = "each entry must be \"\" or one of " + join(choices, ", ");
  return rule<std::vector<std::string>>(text, [choices](const std::vector<std::string>& vs) {
    for (const auto& v : vs) {
      bool found = v.empty();
      for (const auto& c : choices) found = found || v == c;
      if (!found) return false;
    }
    return true;
  });
}

const std::vector<std::string> kLinearVariants = {"plain", "decay", "gla", "delta", "gated_delta"};

// A key stored in a plain member of one section.
template <class S, class T>
ConfigKey field(const char* name, S Config::*section, T S::*member, Rule r, const char* doc) {
  return ConfigKey{name, type_of<T>(), doc, r.text,
                   [section, member](const Config& c) { return ConfigValue(std::in_place_type<T>, (c.*section).*member); },
                   [section, member](Config& c, const ConfigValue& v) { (c.*section).*member = std::get<T>(v); },
                   r.ok};
}

std::vector<ConfigKey> build_schema() {
  using C = Config;
  using M = ModelConfig;
  using D = DataConfig;
  using T = TrainConfig;
  using O = OptimConfig;
  using P = ParallelConfig;
  using K = CheckpointConfig;
  using L = LogConfig;
  using X = DistillConfig;
  std::vector<ConfigKey> s = {
      // model — the HybridLM (layers/config.h)
      field("model.vocab_size", &C::model, &M::vocab_size,
            rule<int64_t>("must be 0 (from the data) or >= 2", [](const int64_t& v) { return v == 0 || v >= 2; }),
            "vocabulary size; 0 takes it from the data (the token file's tokenizer)"),
      field("model.d_model", &C::model, &M::d_model, at_least(1), "model width"),
      field("model.n_layers", &C::model, &M::n_layers, at_least(1), "number of blocks"),
      field("model.n_heads", &C::model, &M::n_heads, at_least(1), "attention heads; head dim = d_model / n_heads"),
      field("model.n_kv_heads", &C::model, &M::n_kv_heads, at_least(0), "key/value heads of softmax layers (0: n_heads)"),
      field("model.mlp_hidden", &C::model, &M::mlp_hidden, at_least(1), "SwiGLU hidden width"),
      field("model.layer_pattern", &C::model, &M::layer_pattern,
            rule<std::string>("must be letters L, S and M only, at least one",
                              [](const std::string& v) { return !v.empty() && v.find_first_not_of("LSM") == std::string::npos; }),
            "one letter a layer, repeated to n_layers: L linear, S softmax, M mixture-of-memories"),
      field("model.layer_variants", &C::model, &M::layer_variants, each_one_of_or_empty(kLinearVariants),
            "per-layer linear variant of L layers (\"\" keeps linear_variant)"),
      field("model.linear_variant", &C::model, &M::linear_variant, one_of(kLinearVariants),
            "recurrence of L layers"),
      field("model.feature_map", &C::model, &M::feature_map, one_of({"identity", "elu1", "relu", "hedgehog"}),
            "q/k feature map of plain/decay/gla layers"),
      field("model.linear_scale", &C::model, &M::linear_scale, positive(), "q scale of L layers (1: none)"),
      field("model.linear_output_norm", &C::model, &M::linear_output_norm, any(), "per-head RMSNorm on L outputs"),
      field("model.linear_output_gate", &C::model, &M::linear_output_gate, any(), "swish output gate on L outputs"),
      field("model.gla_gate_rank", &C::model, &M::gla_gate_rank, at_least(1), "low-rank width of the GLA gate"),
      field("model.gla_gate_normalizer", &C::model, &M::gla_gate_normalizer, positive(), "GLA log-gate divisor"),
      field("model.chunk_size", &C::model, &M::chunk_size, at_least(1), "chunk length of chunkwise L layers"),
      field("model.short_conv", &C::model, &M::short_conv, one_of({"auto", "true", "false"}),
            "short causal conv on q, k, v of L/M layers (auto: delta, gated_delta and MoM)"),
      field("model.conv_size", &C::model, &M::conv_size, at_least(1), "kernel length of the short conv"),
      field("model.window", &C::model, &M::window, at_least(0), "sliding window of S layers (0: full causal)"),
      field("model.rope_theta", &C::model, &M::rope_theta, positive(), "RoPE base of S layers"),
      field("model.rope_type", &C::model, &M::rope_type, one_of({"default", "linear", "dynamic", "llama3", "yarn"}),
            "RoPE scaling of S layers, as transformers computes it (layers/rope.h)"),
      field("model.rope_factor", &C::model, &M::rope_factor, positive(), "RoPE scaling factor (linear, dynamic, llama3, yarn)"),
      field("model.rope_original_max_positions", &C::model, &M::rope_original_max_positions, at_least(0),
            "pretraining context of llama3 / yarn scaling; dynamic: max_position_embeddings"),
      field("model.rope_low_freq_factor", &C::model, &M::rope_low_freq_factor, positive(), "llama3 RoPE: low_freq_factor"),
      field("model.rope_high_freq_factor", &C::model, &M::rope_high_freq_factor, positive(), "llama3 RoPE: high_freq_factor"),
      field("model.rope_beta_fast", &C::model, &M::rope_beta_fast, positive(), "yarn RoPE: beta_fast"),
      field("model.rope_beta_slow", &C::model, &M::rope_beta_slow, positive(), "yarn RoPE: beta_slow"),
      field("model.rope_truncate", &C::model, &M::rope_truncate, any(), "yarn RoPE: truncate the correction range"),
      field("model.rope_attention_factor", &C::model, &M::rope_attention_factor, non_negative(),
            "yarn RoPE: cos/sin scale (0: 0.1 ln(factor) + 1)"),
      field("model.qkv_bias", &C::model, &M::qkv_bias, any(), "S layers: biases on q/k/v projections (Qwen2)"),
      field("model.mom_memories", &C::model, &M::mom_memories, at_least(1), "memories per M layer"),
      field("model.mom_topk", &C::model, &M::mom_topk, at_least(1), "memories each token is routed to"),
      field("model.mom_shared_memory", &C::model, &M::mom_shared_memory, any(), "M layers add an always-on shared memory"),
      field("model.mom_variant", &C::model, &M::mom_variant, one_of({"gated_delta", "delta", "decay", "plain"}),
            "recurrence of each MoM memory"),
      field("model.mom_aux_loss_scale", &C::model, &M::mom_aux_loss_scale, non_negative(), "weight of the MoM load-balancing loss"),
      field("model.norm_eps", &C::model, &M::norm_eps, positive(), "RMSNorm epsilon"),
      field("model.tie_embeddings", &C::model, &M::tie_embeddings, any(), "LM head shares the embedding matrix"),
      field("model.init_std", &C::model, &M::init_std, positive(), "std of the normal weight init"),
      field("model.scaled_residual_init", &C::model, &M::scaled_residual_init, any(), "output projections std / sqrt(2 n_layers)"),
      field("model.seed", &C::model, &M::seed, any(), "parameter init seed"),
      ConfigKey{"model.dtype", KeyType::String, "parameter and activation dtype", "must be one of f32, f64",
                [](const Config& c) { return ConfigValue(std::string(dtype_name(c.model.dtype))); },
                [](Config& c, const ConfigValue& v) {
                  const auto& name = std::get<std::string>(v);
                  SKEIN_CHECK(name == "f32" || name == "f64", "model.dtype: invalid value '", name, "' (f32 or f64)");
                  c.model.dtype = name == "f64" ? DType::f64 : DType::f32;
                },
                one_of({"f32", "f64"}).ok},
      ConfigKey{"model.weight_dtype", KeyType::String,
                "storage of S layers' and the LM head's Linear weights (bf16: frozen, e.g. a bf16 checkpoint's teacher)",
                "must be one of f32, f64, bf16",
                [](const Config& c) { return ConfigValue(std::string(dtype_name(c.model.weight_dtype))); },
                [](Config& c, const ConfigValue& v) {
                  const auto& name = std::get<std::string>(v);
                  SKEIN_CHECK(name == "f32" || name == "f64" || name == "bf16", "model.weight_dtype: invalid value '",
                              name, "' (f32, f64 or bf16)");
                  c.model.weight_dtype = name == "f64" ? DType::f64 : name == "bf16" ? DType::bf16 : DType::f32;
                },
                one_of({"f32", "f64", "bf16"}).ok},
      // data
      field("data.source", &C::data, &D::source, one_of({"hdf5", "mqar", "icl_regression"}),
            "hdf5 (token file from skein prep), mqar or icl_regression (synthetic)"),
      field("data.path", &C::data, &D::path, any(), "the HDF5 token file (source hdf5)"),
      field("data.paths", &C::data, &D::paths,
            rule<std::vector<DataPath>>("each entry needs a non-empty path and a finite weight > 0",
                                        [](const std::vector<DataPath>& ps) {
                                          for (const auto& p : ps)
                                            if (p.path.empty() || !std::isfinite(p.weight) || p.weight <= 0) return false;
                                          return true;
                                        }),
            "a blend of token files [{path: a.h5, weight: 0.7}, ...] (replaces data.path)"),
      field("data.seq_len", &C::data, &D::seq_len, at_least(1), "tokens per sequence"),
      field("data.batch_size", &C::data, &D::batch_size, at_least(1), "sequences per micro-batch per data-parallel rank"),
      field("data.seed", &C::data, &D::seed, any(), "shuffle / synthetic data seed"),
      field("data.shuffle", &C::data, &D::shuffle, any(), "shuffle the training windows"),
      field("data.mqar_num_kv_pairs", &C::data, &D::mqar_num_kv_pairs, at_least(1), "MQAR key-value pairs per sequence"),
      field("data.mqar_min_kv_pairs", &C::data, &D::mqar_min_kv_pairs, at_least(0),
            "MQAR training mixture: pair counts doubling from this to mqar_num_kv_pairs (0: off)"),
      field("data.mqar_min_seq_len", &C::data, &D::mqar_min_seq_len, at_least(0),
            "MQAR training mixture: the first rung's example length, doubling with the pairs up to seq_len (0: seq_len)"),
      field("data.mqar_curriculum_interval", &C::data, &D::mqar_curriculum_interval, at_least(0),
            "MQAR: walk the mixture's rungs in order, this many steps each, then stay on the target (0: a uniform mixture)"),
      field("data.mqar_random_non_queries", &C::data, &D::mqar_random_non_queries, any(),
            "MQAR: random ids (true) or 0 (false) at the positions that are not queries"),
      field("data.icl_dim", &C::data, &D::icl_dim, at_least(1), "in-context regression input dimension"),
      field("data.icl_points", &C::data, &D::icl_points, at_least(1), "in-context regression (x, y) pairs per sequence"),
      field("data.icl_noise", &C::data, &D::icl_noise, non_negative(), "in-context regression label noise std"),
      field("data.icl_curriculum", &C::data, &D::icl_curriculum, any(), "in-context regression: Garg et al.'s curriculum"),
      field("data.icl_curriculum_start_dim", &C::data, &D::icl_curriculum_start_dim, at_least(1), "curriculum: first dimension"),
      field("data.icl_curriculum_start_points", &C::data, &D::icl_curriculum_start_points, at_least(1), "curriculum: first number of points"),
      field("data.icl_curriculum_dim_step", &C::data, &D::icl_curriculum_dim_step, at_least(0), "curriculum: dimensions added per stage"),
      field("data.icl_curriculum_points_step", &C::data, &D::icl_curriculum_points_step, at_least(0), "curriculum: points added per stage"),
      field("data.icl_curriculum_interval", &C::data, &D::icl_curriculum_interval, at_least(1), "curriculum: steps per stage"),
      // train
      field("train.steps", &C::train, &T::steps, at_least(0), "optimizer steps"),
      field("train.grad_accum", &C::train, &T::grad_accum, at_least(1), "micro-batches per optimizer step"),
      field("train.clip_grad_norm", &C::train, &T::clip_grad_norm, non_negative(), "global gradient-norm clip (0: none)"),
      field("train.log_every", &C::train, &T::log_every, at_least(1), "steps between metric lines"),
      field("train.eval_every", &C::train, &T::eval_every, at_least(0), "steps between evaluations (0: only at the end)"),
      field("train.eval_batches", &C::train, &T::eval_batches, at_least(1), "batches per evaluation"),
      field("train.on_nan", &C::train, &T::on_nan, one_of({"stop", "skip"}), "a non-finite loss stops the run or skips the step"),
      field("train.run_dir", &C::train, &T::run_dir, not_empty(), "where metrics, checkpoints and samples go"),
      field("train.overwrite", &C::train, &T::overwrite, any(),
            "a fresh run removes another run's files from run_dir (else it refuses the folder)"),
      field("train.threads", &C::train, &T::threads, at_least(0), "compute threads per rank (0: cores / ranks on the node)"),
      field("train.seed", &C::train, &T::seed, any(), "dropout and sampling seed"),
      field("train.sample_tokens", &C::train, &T::sample_tokens, at_least(0), "tokens generated at the end (0: none)"),
      field("train.sample_prompt", &C::train, &T::sample_prompt, any(), "prompt of the end-of-run sample"),
      field("train.device", &C::train, &T::device, device_name_rule(), "cpu | cuda | cuda:N (mpirun: cuda = the local rank's GPU)"),
      field("train.tf32", &C::train, &T::tf32, any(), "cuda: f32 GEMMs through TF32 tensor cores"),
      field("train.recompute", &C::train, &T::recompute, one_of({"none", "mlp", "full"}),
            "activation recomputation: keep each block's input (full) or MLP input (mlp) and re-run it in backward"),
      field("train.precision", &C::train, &T::precision, one_of({"f32", "bf16-mixed"}),
            "bf16-mixed: GEMMs read bf16 operands (weights rounded once per step) and accumulate in f32; norms, "
            "mixers, loss, optimizer and gradients stay f32 (see parallel.grad_reduce_dtype; f32 where the CPU has no "
            "AMX / AVX512-BF16)"),
      field("train.fused_head", &C::train, &T::fused_head, any(),
            "LM head + cross-entropy fused and chunked, never holding [tokens, vocab] logits (unfused under tp)"),
      // optim
      field("optim.name", &C::optim, &O::name, one_of({"adamw", "sgd"}), "optimizer"),
      field("optim.lr", &C::optim, &O::lr, positive(), "peak learning rate"),
      field("optim.min_lr", &C::optim, &O::min_lr, non_negative(), "learning rate at the end of the decay"),
      field("optim.schedule", &C::optim, &O::schedule, one_of({"cosine", "linear", "constant", "plateau"}),
            "decay after warm-up (plateau: ReduceLROnPlateau on the validation loss, skein distill)"),
      field("optim.plateau_factor", &C::optim, &O::plateau_factor,
            rule<double>("must lie in (0, 1)", [](const double& v) { return v > 0 && v < 1; }),
            "plateau: the rate is multiplied by it after patience evaluations without improvement"),
      field("optim.plateau_patience", &C::optim, &O::plateau_patience, at_least(0), "plateau: evaluations tolerated"),
      field("optim.plateau_threshold", &C::optim, &O::plateau_threshold, below_one(),
            "plateau: relative improvement that counts"),
      field("optim.plateau_cooldown", &C::optim, &O::plateau_cooldown, at_least(0),
            "plateau: evaluations ignored after a cut"),
      field("optim.warmup", &C::optim, &O::warmup, at_least(0), "linear warm-up steps"),
      field("optim.beta1", &C::optim, &O::beta1, below_one(), "AdamW first-moment decay"),
      field("optim.beta2", &C::optim, &O::beta2, below_one(), "AdamW second-moment decay"),
      field("optim.eps", &C::optim, &O::eps, positive(), "AdamW epsilon"),
      field("optim.weight_decay", &C::optim, &O::weight_decay, non_negative(), "decoupled weight decay (matrices only)"),
      field("optim.momentum", &C::optim, &O::momentum, below_one(), "SGD momentum"),
      // parallel
      field("parallel.dp", &C::parallel, &P::dp, at_least(1), "data-parallel ranks"),
      field("parallel.sp", &C::parallel, &P::sp, at_least(1), "sequence-parallel ranks"),
      field("parallel.tp", &C::parallel, &P::tp, at_least(1), "tensor-parallel ranks"),
      field("parallel.softmax_sp", &C::parallel, &P::softmax_sp, one_of({"ring", "lasp2h"}),
            "sequence parallelism of S layers"),
      field("parallel.zero1", &C::parallel, &P::zero1, any(), "shard optimizer state across data-parallel ranks"),
      field("parallel.overlap", &C::parallel, &P::overlap, any(),
            "overlap gradient all-reduces with backward and LASP-2's state all-gather with the intra-chunk pass"),
      field("parallel.bucket_mb", &C::parallel, &P::bucket_mb, positive(), "data-parallel gradient bucket size (MiB)"),
      field("parallel.grad_reduce_dtype", &C::parallel, &P::grad_reduce_dtype, one_of({"f32", "bf16"}),
            "dtype data-parallel gradients travel in (bf16: half the bytes on the wire; rounded, summed with f32 "
            "accumulation, widened back before averaging; f32 models only)"),
      field("parallel.bench_skip_comm", &C::parallel, &P::bench_skip_comm, any(),
            "benchmark only: skip the gradient all-reduce and LASP-2 all-gather (results are wrong)"),
      field("parallel.backend", &C::parallel, &P::backend, one_of({"auto", "mpi", "nccl"}),
            "communication backend (auto: NCCL for GPU tensors when every rank has its own GPU)"),
      // checkpoint
      field("checkpoint.every", &C::checkpoint, &K::every, at_least(0), "steps between checkpoints (0: only at the end)"),
      field("checkpoint.keep", &C::checkpoint, &K::keep, at_least(1), "newest checkpoints kept"),
      field("checkpoint.dir", &C::checkpoint, &K::dir, any(), "checkpoint folder (\"\": <run_dir>/checkpoints)"),
      field("checkpoint.dtype", &C::checkpoint, &K::dtype, one_of({"f32", "bf16"}),
            "model weights stored as f32 (resume is bit-exact) or bf16 (half the size; resume starts from the rounded "
            "weights); optimizer state stays f32"),
      // log
      field("log.jsonl", &C::log, &L::jsonl, any(), "write <run_dir>/metrics.jsonl"),
      field("log.tensorboard", &C::log, &L::tensorboard, any(), "write <run_dir>/tb/events.out.tfevents.*"),
      // distill (skein distill; launch/distill.h)
      field("distill.teacher", &C::distill, &X::teacher, any(), "teacher: a skein checkpoint folder or checkpoints root"),
      field("distill.method", &C::distill, &X::method, one_of({"liger", "lolcats"}), "linearisation recipe"),
      field("distill.layers", &C::distill, &X::layers,
            rule<std::string>("must be letters L and S only (or \"\")",
                              [](const std::string& v) { return v.find_first_not_of("LS") == std::string::npos; }),
            "layers to convert: \"\" every softmax layer, else L (convert) / S (keep) a layer, repeated"),
      field("distill.window", &C::distill, &X::window, at_least(1), "sliding softmax window of the student layers"),
      field("distill.feature_dim", &C::distill, &X::feature_dim, at_least(1), "lolcats: Hedgehog feature map width"),
      field("distill.liger_attention", &C::distill, &X::liger_attention, any(),
            "liger: mix sliding-window softmax (0.5) into the gated recurrence"),
      field("distill.stage1_steps", &C::distill, &X::stage1_steps, at_least(0), "lolcats: attention-transfer steps"),
      field("distill.stage1_lr", &C::distill, &X::stage1_lr, positive(), "attention-transfer peak learning rate"),
      field("distill.stage2_steps", &C::distill, &X::stage2_steps, at_least(0), "LoRA fine-tune steps (LM loss)"),
      field("distill.stage2_lr", &C::distill, &X::stage2_lr, positive(), "LoRA fine-tune peak learning rate"),
      field("distill.lora_rank", &C::distill, &X::lora_rank, at_least(1), "LoRA rank r"),
      field("distill.lora_alpha", &C::distill, &X::lora_alpha, positive(), "LoRA alpha (update scaled by alpha / r)"),
      field("distill.lora_dropout", &C::distill, &X::lora_dropout, below_one(), "dropout on the LoRA input"),
      field("distill.lora_targets", &C::distill, &X::lora_targets,
            rule<std::vector<std::string>>("must be a non-empty list of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
                                           "down_proj",
                                           [](const std::vector<std::string>& vs) {
                                             for (const auto& v : vs)
                                               if (!is_lora_target(v)) return false;
                                             return !vs.empty();
                                           }),
            "Linear layers of the converted blocks that get adapters (attention q/k/v/o_proj, MLP gate/up/down_proj)"),
      field("distill.eval_context", &C::distill, &X::eval_context, at_least(1), "prompt length of the generation benchmark"),
      field("distill.eval_tokens", &C::distill, &X::eval_tokens, at_least(1), "tokens decoded in the generation benchmark"),
  };
  return s;
}

// A string that YAML reads back as the same text when written without quotes.
bool plain_safe(const std::string& s) {
  std::string l = s;
  for (char& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* word : {"null", "true", "false", "yes", "no", "on", "off", "y", "n"})  // YAML 1.1 and 1.2 words
    if (l == word) return false;
  if (s.empty()) return false;
  if (!(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '/' || c == '-')) return false;
  return true;
}

std::string quote(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c == 0x7f) out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
    else out += ch;  // printable ASCII and UTF-8 bytes as they are
  }
  return out + "\"";
}

std::string format_string(const std::string& s) { return plain_safe(s) ? s : quote(s); }

// The shortest text that reads back to exactly v, in a form every YAML reader takes for a
// float: fixed ("0.0003", "10000.0") when that is about as short, else "1.0e-8" (a '.' in
// the mantissa and a signed exponent, as YAML 1.1 wants); ".inf" / "-.inf" / ".nan".
std::string format_double(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  char buf[400];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  SKEIN_ASSERT(res.ec == std::errc());
  const std::string raw(buf, res.ptr);  // "3e-04", "1.2345e+20"
  const size_t e = raw.find('e');
  std::string mantissa = raw.substr(0, e);
  if (mantissa.find('.') == std::string::npos) mantissa += ".0";
  const int exponent = std::stoi(raw.substr(e + 1));
  const std::string sci = mantissa + (exponent < 0 ? "e-" : "e+") + std::to_string(std::abs(exponent));
  res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (res.ec != std::errc()) return sci;
  std::string fixed(buf, res.ptr);
  if (fixed.find('.') == std::string::npos) fixed += ".0";
  return fixed.size() <= sci.size() + 1 ? fixed : sci;
}

}  // namespace

const char* key_type_name(KeyType t) {
  switch (t) {
    case KeyType::Int: return "int";
    case KeyType::UInt: return "unsigned int";
    case KeyType::Float: return "float";
    case KeyType::Bool: return "bool";
    case KeyType::String: return "string";
    case KeyType::StringList: return "list of strings";
    case KeyType::PathList: return "list of {path, weight}";
  }
  return "?";
}

const std::vector<ConfigKey>& config_schema() {
  static const std::vector<ConfigKey> schema = build_schema();
  return schema;
}

const ConfigKey* find_config_key(const std::string& name) {
  static const std::map<std::string, const ConfigKey*> index = [] {
    std::map<std::string, const ConfigKey*> m;
    for (const auto& k : config_schema()) {
      SKEIN_ASSERT(!m.count(k.name), "config key listed twice: ", k.name);
      SKEIN_ASSERT(k.valid(k.get(Config{})), "the default of ", k.name, " breaks its own rule: ", k.rule);
      m[k.name] = &k;
    }
    return m;
  }();
  auto it = index.find(name);
  return it == index.end() ? nullptr : it->second;
}

std::vector<std::string> config_sections() {
  std::vector<std::string> out;
  for (const auto& k : config_schema()) {
    std::string section = k.name.substr(0, k.name.find('.'));
    if (out.empty() || out.back() != section) out.push_back(section);
  }
  return out;
}

std::string format_config_value(const ConfigValue& v) {
  switch (v.index()) {
    case 0: return std::to_string(std::get<int64_t>(v));
    case 1: return std::to_string(std::get<uint64_t>(v));
    case 2: return format_double(std::get<double>(v));
    case 3: return std::get<bool>(v) ? "true" : "false";
    case 4: return format_string(std::get<std::string>(v));
    case 6: {
      std::string s = "[";
      const auto& ps = std::get<std::vector<DataPath>>(v);
      for (size_t i = 0; i < ps.size(); ++i)
        s += (i ? ", " : "") + std::string("{path: ") + format_string(ps[i].path) + ", weight: " + format_double(ps[i].weight) + "}";
      return s + "]";
    }
    default: {
      std::string s = "[";
      const auto& xs = std::get<std::vector<std::string>>(v);
      for (size_t i = 0; i < xs.size(); ++i) s += (i ? ", " : "") + format_string(xs[i]);
      return s + "]";
    }
  }
}

std::string config_value(const Config& cfg, const std::string& key) {
  const ConfigKey* k = find_config_key(key);
  SKEIN_CHECK(k, "config_value: unknown key '", key, "'");
  return format_config_value(k->get(cfg));
}

bool configs_equal(const Config& a, const Config& b) {
  for (const auto& k : config_schema())
    if (k.get(a) != k.get(b)) return false;
  return true;
}

}  // namespace skein
