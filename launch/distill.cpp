// distill.cpp — the distillation recipe (see distill.h): teacher and student, one loop shared
// by both stages, checkpoints and resume, the export, and the side-by-side evaluation.
#include "launch/distill.h"
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include "configs/loader.h"
#include "core/allocator.h"
#include "core/threadpool.h"
#include "launch/checkpoint.h"
#include "launch/hf_llama.h"
#include "launch/metrics.h"
#include "launch/progress.h"
#include "launch/run_dir.h"
#include "launch/trainer.h"
#include "layers/generate.h"
#include "layers/liger.h"
#include "layers/lolcats.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace skein {
namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string checkpoint_root(const Config& cfg) {
  return cfg.checkpoint.dir.empty() ? (fs::path(cfg.train.run_dir) / "checkpoints").string() : cfg.checkpoint.dir;
}

// Converts the layers of cfg.distill.layers of `model` in place; returns their indices.
std::vector<int64_t> convert(HybridLM& model, const Config& cfg) {
  const DistillConfig& d = cfg.distill;
  if (d.method == "liger") {
    LigerOptions o;
    o.attention = d.liger_attention;
    o.window = d.window;
    o.chunk = cfg.model.chunk_size;
    return convert_to_liger(model, d.layers, o);
  }
  LolcatsOptions o;
  o.window = d.window;
  o.feature_dim = d.feature_dim;
  o.chunk = cfg.model.chunk_size;
  return convert_to_lolcats(model, d.layers, o, cfg.model.seed);
}

LoRAConfig lora_config(const Config& cfg) {
  LoRAConfig l;
  l.rank = cfg.distill.lora_rank;
  l.alpha = cfg.distill.lora_alpha;
  l.dropout = cfg.distill.lora_dropout;
  l.targets = cfg.distill.lora_targets;
  l.seed = cfg.train.seed;
  return l;
}

std::unique_ptr<AdamW> make_adamw(const Config& cfg, NamedTensors params, double lr) {
  AdamWOptions a;
  a.lr = lr;
  a.beta1 = cfg.optim.beta1;
  a.beta2 = cfg.optim.beta2;
  a.eps = cfg.optim.eps;
  a.weight_decay = cfg.optim.weight_decay;
  return std::make_unique<AdamW>(std::move(params), a);
}

// Where a run stands: the stage (1 attention transfer, 2 LoRA) and the steps done in it.
struct Progress {
  int stage = 1;
  int64_t step = 0;
};

// What both stages share.
struct StageContext {
  const Config& cfg;
  HybridLM& student;
  DataSources& data;
  MetricsWriter& metrics;
  int64_t stage1_steps;  // 0 for liger
};

void save_progress(const StageContext& c, const Optimizer& opt, Progress p) {
  CheckpointState st;
  st.step = p.stage == 1 ? p.step : c.stage1_steps + p.step;
  st.model = c.student.state_dict();
  st.optimizer = opt.state_dict();
  st.counters["data.epoch"] = c.data.train->cursor().epoch;
  st.counters["data.position"] = c.data.train->cursor().position;
  st.counters["distill.stage"] = p.stage;
  st.counters["distill.step"] = p.step;
  st.config_yaml = config_to_yaml(c.cfg);
  save_checkpoint(checkpoint_root(c.cfg), st);
  prune_checkpoints(checkpoint_root(c.cfg), c.cfg.checkpoint.keep);
}

// Steps [start, steps) of one stage: loss_fn(batch) -> scalar loss (named `what` in the log),
// averaged over train.grad_accum micro-batches, clipped, AdamW with the optim schedule
// scaled to the stage's lr; logs, evaluates (stage 2) and checkpoints like the trainer.
void run_stage(const StageContext& c, int stage, int64_t start, int64_t steps, double lr, Optimizer& opt,
               const char* what, const std::function<Tensor(const Batch&)>& loss_fn) {
  const Config& cfg = c.cfg;
  LrSchedule schedule;
  schedule.peak_lr = lr;
  schedule.min_lr = 0.1 * lr;
  schedule.warmup = std::min(cfg.optim.warmup, steps);
  schedule.total = steps;
  schedule.decay = parse_lr_decay(cfg.optim.schedule);
  const int64_t accum = cfg.train.grad_accum;
  const double tokens_per_step = static_cast<double>(cfg.data.batch_size * cfg.data.seq_len * accum);
  ProgressLine bar("distill stage " + std::to_string(stage), steps, start);
  for (int64_t step = start; step < steps; ++step) {
    const auto t0 = Clock::now();
    opt.set_lr(lr_at(schedule, step));
    opt.zero_grad();
    double value = 0;
    for (int64_t m = 0; m < accum; ++m) {
      Tensor loss = loss_fn(c.data.train->next());
      mul(loss, 1.0 / static_cast<double>(accum)).backward();
      value += loss.item() / static_cast<double>(accum);
    }
    const double grad_norm = clip_grad_norm(opt.params(), cfg.train.clip_grad_norm > 0 ? cfg.train.clip_grad_norm : 1e300);
    SKEIN_CHECK(std::isfinite(value) && std::isfinite(grad_norm), "distill: stage ", stage, ": the ", what, " is ",
                value, " and the gradient norm ", grad_norm, " at step ", step + 1, " (lower distill.stage", stage, "_lr)");
    opt.step();
    bar.tick(step + 1, tokens_per_step, seconds_since(t0), fmt("%s %.5f", what, value));
    const double tokens_per_s = bar.tokens_per_s();  // moving average over the last 20 steps
    const int64_t global = stage == 1 ? step + 1 : c.stage1_steps + step + 1;
    if ((step + 1) % cfg.train.log_every == 0 || step == start) {
      bar.line(fmt("stage %d step %6lld | %s %.5f | lr %.2e | grad norm %.3f | %.0f tok/s | eta %s", stage,
                   static_cast<long long>(step + 1), what, value, opt.lr(), grad_norm, tokens_per_s,
                   ProgressLine::duration(bar.eta_seconds()).c_str()));
      c.metrics.write(global, {{"stage", static_cast<double>(stage)}, {what, value}, {"lr", opt.lr()}, {"grad_norm", grad_norm},
                               {"tokens_per_s", tokens_per_s}});
    }
    if (stage == 2 && cfg.train.eval_every > 0 && (step + 1) % cfg.train.eval_every == 0 && step + 1 < steps) {
      RunSummary e = evaluate(c.student, *c.data.val, cfg, cfg.train.eval_batches);
      bar.line(fmt("eval  stage 2 step %6lld | val loss %.4f | val ppl %.2f", static_cast<long long>(step + 1),
                   e.val_loss, e.val_ppl));
      c.metrics.write(global, {{"val_loss", e.val_loss}, {"val_ppl", e.val_ppl}});
    }
    if (cfg.checkpoint.every > 0 && (step + 1) % cfg.checkpoint.every == 0 && step + 1 < steps)
      save_progress(c, opt, {stage, step + 1});
  }
  if (steps > 0) save_progress(c, opt, {stage, steps});  // the stage is done: a resume skips it
}

double cache_mb(const std::vector<MixerCache>& caches) {
  double bytes = 0;
  auto add_bytes = [&](const Tensor& t) {
    if (t.defined()) bytes += static_cast<double>(t.numel() * static_cast<int64_t>(dtype_size(t.dtype())));
  };
  for (const MixerCache& c : caches) {
    add_bytes(c.k);
    add_bytes(c.v);
    for (const Tensor& s : c.states) add_bytes(s);
  }
  return bytes / 1048576.0;
}

void print_row(const char* who, const RunSummary& e, const GenerationBench& g) {
  std::printf("%-8s | val loss %.4f | val ppl %9.3f | prefill %8.0f tok/s | decode %7.1f tok/s | cache %8.3f MB | "
              "peak %8.1f MB\n", who, e.val_loss, e.val_ppl, g.prefill_tokens_per_s, g.decode_tokens_per_s, g.cache_mb,
              g.peak_mb);
}

void write_summary(const DistillSummary& s) {
  const fs::path dir(s.run_dir);
  std::ofstream f(dir / "distill.json.tmp");
  f.precision(17);
  auto gen = [&](const char* who, const GenerationBench& g) {
    f << ", \"" << who << "_prefill_tokens_per_s\": " << g.prefill_tokens_per_s << ", \"" << who
      << "_decode_tokens_per_s\": " << g.decode_tokens_per_s << ", \"" << who << "_cache_mb\": " << g.cache_mb
      << ", \"" << who << "_peak_mb\": " << g.peak_mb;
  };
  f << "{\"teacher_val_loss\": " << s.teacher_val_loss << ", \"teacher_val_ppl\": " << s.teacher_val_ppl
    << ", \"student_val_loss\": " << s.student_val_loss << ", \"student_val_ppl\": " << s.student_val_ppl
    << ", \"recovery\": " << s.recovery;
  gen("teacher", s.teacher_gen);
  gen("student", s.student_gen);
  f << ", \"student_checkpoint\": \"" << s.student_checkpoint << "\"}\n";
  f.close();
  fs::rename(dir / "distill.json.tmp", dir / "distill.json");
}

}  // namespace

std::unique_ptr<HybridLM> load_teacher(Config& cfg) {
  const std::string& path = cfg.distill.teacher;
  SKEIN_CHECK(!path.empty(), "distill.teacher: empty; name a skein checkpoint folder "
              "(runs/x/checkpoints/ckpt-000600), a checkpoints root or a Hugging Face Llama folder");
  SKEIN_CHECK(fs::exists(path), "distill.teacher: '", path, "' does not exist");
  if (fs::exists(fs::path(path) / "config.json")) {  // a Hugging Face Llama folder
    Config hc;
    auto teacher = load_hf_llama_model(path, &hc);
    cfg.model = hc.model;
    std::printf("teacher: %s (Hugging Face, %lld parameters, %lld layers)\n", path.c_str(),
                static_cast<long long>(teacher->num_parameters()), static_cast<long long>(cfg.model.n_layers));
    return teacher;
  }
  std::string dir = path;
  if (!fs::exists(fs::path(path) / "state.h5") && fs::is_directory(path)) {
    dir = latest_checkpoint(path);
    if (dir.empty()) dir = latest_checkpoint((fs::path(path) / "checkpoints").string());  // a run folder
    SKEIN_CHECK(!dir.empty(), "distill.teacher: '", path, "' holds no skein checkpoint (state.h5)");
  }
  CheckpointState st = load_checkpoint(dir);
  Config tc = parse_config(st.config_yaml, dir + "/state.h5:config_yaml");
  SKEIN_CHECK(tc.model.input_dim == 0, "distill.teacher: '", dir, "' is a continuous-input model, not a language model");
  cfg.model = tc.model;
  auto teacher = std::make_unique<HybridLM>(cfg.model);
  teacher->load_state_dict(st.model);
  std::printf("teacher: %s (%lld parameters, %lld layers, pattern %s)\n", dir.c_str(),
              static_cast<long long>(teacher->num_parameters()), static_cast<long long>(cfg.model.n_layers),
              cfg.model.layer_pattern.c_str());
  return teacher;
}

std::unique_ptr<HybridLM> make_student(const HybridLM& teacher, const Config& cfg, std::vector<int64_t>* converted) {
  auto student = std::make_unique<HybridLM>(teacher.cfg);
  student->load_state_dict(teacher.state_dict());  // a copy: the teacher stays as it is
  std::vector<int64_t> layers = convert(*student, cfg);
  if (converted) *converted = layers;
  return student;
}

std::unique_ptr<HybridLM> load_student(const std::string& dir, Config* cfg_out) {
  CheckpointState st = load_checkpoint(dir);
  Config cfg = parse_config(st.config_yaml, dir + "/state.h5:config_yaml");
  auto student = std::make_unique<HybridLM>(cfg.model);
  convert(*student, cfg);
  student->load_state_dict(st.model);
  if (cfg_out) *cfg_out = cfg;
  return student;
}

GenerationBench bench_generation(HybridLM& model, const std::vector<int64_t>& prompt, int64_t new_tokens) {
  SKEIN_CHECK(!prompt.empty() && new_tokens >= 1, "bench_generation: needs a prompt and new_tokens >= 1");
  NoGradGuard no_grad;
  cpu_allocator::reset_peak();
  const int64_t live_before = cpu_allocator::stats().bytes_live;
  std::vector<MixerCache> caches;
  std::vector<double> ids(prompt.begin(), prompt.end());
  const int64_t P = static_cast<int64_t>(ids.size());
  auto t0 = Clock::now();
  Tensor logits = model.forward(from_vector(ids, {1, P}, DType::i64), &caches);
  GenerationBench g;
  SamplingOptions greedy;
  greedy.temperature = 0;
  Generator gen(0);
  g.prefill_tokens_per_s = static_cast<double>(P) / seconds_since(t0);
  t0 = Clock::now();
  for (int64_t i = 0; i < new_tokens; ++i) {
    Tensor last = logits.narrow(1, logits.size(1) - 1, 1).reshape({-1});
    const double next = static_cast<double>(sample_token(last, greedy, gen));
    logits = model.forward(from_vector({next}, {1, 1}, DType::i64), &caches);
  }
  g.decode_tokens_per_s = static_cast<double>(new_tokens) / seconds_since(t0);
  g.cache_mb = cache_mb(caches);
  g.peak_mb = static_cast<double>(cpu_allocator::stats().bytes_peak - live_before) / 1048576.0;
  return g;
}

DistillSummary distill(Config cfg, const std::string& resume) {
  SKEIN_CHECK(cfg.parallel.dp == 1 && cfg.parallel.sp == 1 && cfg.parallel.tp == 1,
              "distill runs on one process: parallel.dp, parallel.sp and parallel.tp must be 1");
  SKEIN_CHECK(cfg.train.device == "cpu", "distill: train.device=", cfg.train.device,
              " is not supported yet (distillation runs on the CPU; train, eval and generate run on a GPU)");
  if (cfg.train.threads > 0) set_num_threads(static_cast<int>(cfg.train.threads));
  auto teacher = load_teacher(cfg);
  set_trainable(*teacher, false);
  teacher->eval();
  DataSources data = make_data(cfg);
  SKEIN_CHECK(cfg.data.source != "icl_regression", "distill: data.source icl_regression is not a language-model task");
  SKEIN_CHECK(data.val, "distill: ", cfg.data.path, " has no validation split; teacher and student are compared on it");
  validate_config(cfg);
  const DistillConfig& d = cfg.distill;
  const bool lolcats = d.method == "lolcats";
  const int64_t stage1_steps = lolcats ? d.stage1_steps : 0;  // Liger has no attention transfer
  for (const std::string& note : claim_run_dir(cfg, checkpoint_root(cfg), !resume.empty()))  // launch/run_dir.h
    std::printf("%s\n", note.c_str());
  check_writable(checkpoint_root(cfg), cfg.checkpoint.dir.empty() ? "train.run_dir (its checkpoints/)" : "checkpoint.dir");
  fs::create_directories(cfg.train.run_dir);
  std::ofstream(fs::path(cfg.train.run_dir) / "config.yaml") << config_to_yaml(cfg);
  if (console_options().print_config) std::printf("# resolved config\n%s", config_to_yaml(cfg).c_str());

  std::vector<int64_t> converted;
  auto student = make_student(*teacher, cfg, &converted);
  set_trainable(*student, false);
  std::printf("student: %s, %zu of %lld layers converted, window %lld, %lld parameters\n", d.method.c_str(),
              converted.size(), static_cast<long long>(cfg.model.n_layers), static_cast<long long>(d.window),
              static_cast<long long>(student->num_parameters()));
  MetricsWriter metrics(cfg.train.run_dir, cfg.log);
  StageContext ctx{cfg, *student, data, metrics, stage1_steps};

  Progress at;
  CheckpointState saved;
  const std::string ckpt = resume == "auto" ? latest_checkpoint(checkpoint_root(cfg)) : resume;
  if (!ckpt.empty()) {
    saved = load_checkpoint(ckpt);
    SKEIN_CHECK(saved.counters.count("distill.stage"), "resume from ", ckpt, ": not a distill checkpoint");
    at = {static_cast<int>(saved.counters.at("distill.stage")), saved.counters.at("distill.step")};
    if (at.stage == 2) apply_lora(*student, lora_config(cfg));
    try {
      student->load_state_dict(saved.model);
    } catch (const Error& e) {
      throw Error(detail::concat("resume from ", ckpt, ": the checkpoint is from a different student: ", e.what()));
    }
    data.train->set_cursor({saved.counters.at("data.epoch"), saved.counters.at("data.position")});
    std::printf("resumed from %s at stage %d step %lld\n", ckpt.c_str(), at.stage, static_cast<long long>(at.step));
  }
  if (at.stage == 1) {
    if (stage1_steps > 0) {  // attention transfer: feature maps and window factors only
      auto opt = make_adamw(cfg, attention_transfer_parameters(*student), d.stage1_lr);
      if (!ckpt.empty()) opt->load_state_dict(saved.optimizer);
      run_stage(ctx, 1, at.step, stage1_steps, d.stage1_lr, *opt, "mse", [&](const Batch& b) {
        return attention_transfer_loss(*student, teacher_mixer_activations(*teacher, b.inputs, converted));
      });
      set_trainable(*student, false);
    }
    apply_lora(*student, lora_config(cfg));
    at = {2, 0};
  }
  {  // LoRA on the converted layers with the LM loss
    auto opt = make_adamw(cfg, trainable_parameters(*student), d.stage2_lr);
    if (at.step > 0) opt->load_state_dict(saved.optimizer);
    student->train();
    run_stage(ctx, 2, at.step, d.stage2_steps, d.stage2_lr, *opt, "loss",
              [&](const Batch& b) { return student->loss(b.inputs, b.targets).total; });
  }
  merge_lora(*student);
  student->eval();
  const int64_t total_steps = stage1_steps + d.stage2_steps;
  CheckpointState out;
  out.step = total_steps;
  out.model = student->state_dict();
  out.config_yaml = config_to_yaml(cfg);
  const std::string student_root = (fs::path(cfg.train.run_dir) / "student").string();
  DistillSummary s;
  s.run_dir = cfg.train.run_dir;
  s.student_checkpoint = save_checkpoint(student_root, out);
  prune_checkpoints(student_root, 1);

  RunSummary te = evaluate(*teacher, *data.val, cfg, cfg.train.eval_batches);
  RunSummary se = evaluate(*student, *data.val, cfg, cfg.train.eval_batches);
  s.teacher_val_loss = te.val_loss;
  s.teacher_val_ppl = te.val_ppl;
  s.student_val_loss = se.val_loss;
  s.student_val_ppl = se.val_ppl;
  s.recovery = te.val_ppl / se.val_ppl;
  std::vector<int64_t> prompt;
  for (int64_t i = 0; i < d.eval_context; ++i) prompt.push_back((i * 7919 + 13) % cfg.model.vocab_size);
  s.teacher_gen = bench_generation(*teacher, prompt, d.eval_tokens);
  s.student_gen = bench_generation(*student, prompt, d.eval_tokens);
  std::printf("# teacher vs student: %lld validation batches; generation after %lld prompt tokens, %lld decoded\n",
              static_cast<long long>(cfg.train.eval_batches), static_cast<long long>(d.eval_context),
              static_cast<long long>(d.eval_tokens));
  print_row("teacher", te, s.teacher_gen);
  print_row("student", se, s.student_gen);
  std::printf("recovery (teacher ppl / student ppl): %.4f\nstudent: %s\n", s.recovery, s.student_checkpoint.c_str());
  metrics.write(total_steps, {{"teacher_val_ppl", s.teacher_val_ppl}, {"student_val_ppl", s.student_val_ppl},
                              {"recovery", s.recovery}, {"teacher_decode_tokens_per_s", s.teacher_gen.decode_tokens_per_s},
                              {"student_decode_tokens_per_s", s.student_gen.decode_tokens_per_s},
                              {"teacher_cache_mb", s.teacher_gen.cache_mb}, {"student_cache_mb", s.student_gen.cache_mb}});
  metrics.flush();
  write_summary(s);
  return s;
}

}  // namespace skein
