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
#include "launch/device_setup.h"
#include "launch/distill_report.h"
#include "launch/hf_llama.h"
#include "launch/rank_agreement.h"
#include "launch/metrics.h"
#include "launch/progress.h"
#include "launch/run_dir.h"
#include "launch/trainer.h"
#include "layers/generate.h"
#include "layers/liger.h"
#include "layers/lolcats.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/plateau.h"
#include "optim/schedule.h"
#include "parallel/data_parallel.h"
#include "parallel/grid.h"
#include "parallel/mpi_comm.h"

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

PlateauOptions plateau_options(const OptimConfig& o) {
  PlateauOptions p;
  p.factor = o.plateau_factor;
  p.patience = o.plateau_patience;
  p.threshold = o.plateau_threshold;
  p.cooldown = o.plateau_cooldown;
  return p;
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

// What both stages share. Under mpirun every rank holds the teacher and the student and
// draws its dp shard of each global batch; rank 0 logs, evaluates and checkpoints.
struct StageContext {
  const Config& cfg;
  HybridLM& student;
  DataSources& data;
  MetricsWriter& metrics;
  int64_t stage1_steps;  // 0 for liger
  Communicator& dp;      // the data-parallel group (size 1 on one process)
  Device device;
};

bool is_rank0(const StageContext& c) { return c.dp.rank() == 0; }

void save_progress(const StageContext& c, const Optimizer& opt, Progress p, const ReduceLROnPlateau* plateau) {
  if (!is_rank0(c)) return;  // the replicas are identical: rank 0 writes
  CheckpointState st;
  st.step = p.stage == 1 ? p.step : c.stage1_steps + p.step;
  st.model = c.student.state_dict();
  st.optimizer = opt.state_dict();
  st.counters["data.epoch"] = c.data.train->cursor().epoch;
  st.counters["data.position"] = c.data.train->cursor().position;
  st.counters["distill.stage"] = p.stage;
  st.counters["distill.step"] = p.step;
  if (plateau) plateau->save(st.counters, "distill.plateau.");
  st.config_yaml = config_to_yaml(c.cfg);
  save_checkpoint(checkpoint_root(c.cfg), st);
  prune_checkpoints(checkpoint_root(c.cfg), c.cfg.checkpoint.keep);
}

// Steps [start, steps) of one stage: loss_fn(batch) -> scalar loss (named `what` in the log),
// the mean over the global batch (train.grad_accum micro-batches on each of the dp ranks;
// token_weighted: each weighted by its count of targets, as the trainer does,
// parallel/data_parallel.h; else all alike, as the MSE's are the same size), gradients averaged
// over dp, clipped, AdamW with the optim schedule scaled to the stage's lr (optim.schedule
// plateau: constant after warm-up, cut by ReduceLROnPlateau on the validation loss at each
// evaluation of stage 2); logs, evaluates (stage 2) and checkpoints like the trainer.
void run_stage(const StageContext& c, int stage, int64_t start, int64_t steps, double lr, Optimizer& opt,
               const char* what, bool token_weighted, const std::function<Tensor(const Batch&)>& loss_fn,
               ReduceLROnPlateau* plateau) {
  const Config& cfg = c.cfg;
  LrSchedule schedule;
  schedule.peak_lr = lr;
  schedule.min_lr = 0.1 * lr;
  schedule.warmup = std::min(cfg.optim.warmup, steps);
  schedule.total = steps;
  schedule.decay = parse_lr_decay(cfg.optim.schedule);
  const int64_t accum = cfg.train.grad_accum;
  const double tokens_per_step = static_cast<double>(cfg.data.batch_size * cfg.data.seq_len * accum * c.dp.size());
  GradReducer reducer(c.dp, opt.params());
  broadcast_parameters(c.dp, opt.params());  // every replica starts from rank 0's
  const bool rank0 = is_rank0(c);
  ProgressLine bar("distill stage " + std::to_string(stage), steps, start,
                   rank0 ? ProgressLine::Mode::automatic : ProgressLine::Mode::off);
  for (int64_t step = start; step < steps; ++step) {
    const auto t0 = Clock::now();
    opt.set_lr(lr_at(schedule, step) * (plateau ? plateau->scale() : 1.0));
    opt.zero_grad();
    std::vector<Batch> micro(static_cast<size_t>(accum));
    std::vector<int64_t> counts;
    int64_t local_count = 0;
    for (Batch& b : micro) {
      b = c.data.train->next();
      counts.push_back(token_weighted ? count_targets(b.targets) : 1);
      local_count += counts.back();
      b = batch_to(b, c.device);
    }
    const TokenScale ts = global_token_scale(c.dp, local_count);
    double local_value = 0;
    for (size_t m = 0; m < micro.size(); ++m) {  // the teacher's activations are computed in loss_fn, per batch
      Tensor loss = loss_fn(micro[m]);
      const double share = ts.local ? static_cast<double>(counts[m]) / static_cast<double>(ts.local) : 0.0;
      mul(loss, ts.scale * share).backward();
      local_value += loss.item() * share;
    }
    reducer.reduce();  // the gradients averaged over the dp ranks
    const double value = global_mean_loss(c.dp, local_value, local_count);
    const double grad_norm = clip_grad_norm(opt.params(), cfg.train.clip_grad_norm > 0 ? cfg.train.clip_grad_norm : 1e300);
    SKEIN_CHECK(std::isfinite(value) && std::isfinite(grad_norm), "distill: stage ", stage, ": the ", what, " is ",
                value, " and the gradient norm ", grad_norm, " at step ", step + 1, " (lower distill.stage", stage, "_lr)");
    opt.step();
    bar.tick(step + 1, tokens_per_step, seconds_since(t0), fmt("%s %.5f", what, value));
    const double tokens_per_s = bar.tokens_per_s();  // moving average over the last 20 steps
    const int64_t global = stage == 1 ? step + 1 : c.stage1_steps + step + 1;
    if (rank0 && ((step + 1) % cfg.train.log_every == 0 || step == start)) {
      bar.line(fmt("stage %d step %6lld | %s %.5f | lr %.2e | grad norm %.3f | %.0f tok/s | eta %s", stage,
                   static_cast<long long>(step + 1), what, value, opt.lr(), grad_norm, tokens_per_s,
                   ProgressLine::duration(bar.eta_seconds()).c_str()));
      c.metrics.write(global, {{"stage", static_cast<double>(stage)}, {what, value}, {"lr", opt.lr()}, {"grad_norm", grad_norm},
                               {"tokens_per_s", tokens_per_s}});
    }
    if (stage == 2 && cfg.train.eval_every > 0 && (step + 1) % cfg.train.eval_every == 0 && step + 1 < steps) {
      // every replica evaluates the same validation batches (so the plateau decides alike)
      RunSummary e = evaluate(c.student, *c.data.val, cfg, cfg.train.eval_batches);
      if (plateau) plateau->step(e.val_loss);
      if (rank0) {
        bar.line(fmt("eval  stage 2 step %6lld | val loss %.4f | val ppl %.2f%s", static_cast<long long>(step + 1),
                     e.val_loss, e.val_ppl, plateau ? fmt(" | lr scale %.3g", plateau->scale()).c_str() : ""));
        c.metrics.write(global, {{"val_loss", e.val_loss}, {"val_ppl", e.val_ppl}});
      }
    }
    if (cfg.checkpoint.every > 0 && (step + 1) % cfg.checkpoint.every == 0 && step + 1 < steps)
      save_progress(c, opt, {stage, step + 1}, plateau);
  }
  if (steps > 0) save_progress(c, opt, {stage, steps}, plateau);  // the stage is done: a resume skips it
}

}  // namespace

std::unique_ptr<HybridLM> load_teacher(Config& cfg, bool verbose) {
  const std::string& path = cfg.distill.teacher;
  SKEIN_CHECK(!path.empty(), "distill.teacher: empty; name a skein checkpoint folder "
              "(runs/x/checkpoints/ckpt-000600), a checkpoints root or a Hugging Face Llama folder");
  SKEIN_CHECK(fs::exists(path), "distill.teacher: '", path, "' does not exist");
  if (fs::exists(fs::path(path) / "config.json")) {  // a Hugging Face Llama folder
    Config hc;
    auto teacher = load_hf_llama_model(path, &hc);
    cfg.model = hc.model;
    if (verbose)
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
  if (verbose)
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

DistillSummary distill(Config cfg, const std::string& resume) {
  int mpi_on = 0;
  MPI_Initialized(&mpi_on);
  std::unique_ptr<Communicator> world;
  if (mpi_on) world = MpiComm::world();
  else world = std::make_unique<SingleProcessComm>();
  check_ranks_agree(*world, config_to_yaml(cfg),
                    resume == "auto" ? "auto -> " + latest_checkpoint(checkpoint_root(cfg)) : resume);
  SKEIN_CHECK(cfg.parallel.sp == 1 && cfg.parallel.tp == 1, "distill: parallel.sp (", cfg.parallel.sp,
              ") and parallel.tp (", cfg.parallel.tp, ") must be 1; distillation replicates teacher and student and "
              "shards the batch over parallel.dp");
  SKEIN_CHECK(!cfg.parallel.zero1, "distill: parallel.zero1 is not supported (the trained adapters are small)");
  ProcessGrid grid(*world, static_cast<int>(cfg.parallel.dp), 1, 1);
  Communicator& dp = grid.dp_comm();
  const bool rank0 = world->rank() == 0;
  set_num_threads(cfg.train.threads > 0 ? static_cast<int>(cfg.train.threads) : threads_per_rank(*world));
  const Device device = setup_device(cfg, world->rank());
  auto teacher = load_teacher(cfg, rank0);
  set_trainable(*teacher, false);
  teacher->eval();
  DataSources data = make_data(cfg, grid.dp_rank(), grid.dp());
  SKEIN_CHECK(cfg.data.source != "icl_regression", "distill: data.source icl_regression is not a language-model task");
  SKEIN_CHECK(data.val, "distill: ", cfg.data.path, " has no validation split; teacher and student are compared on it");
  validate_config(cfg);
  const DistillConfig& d = cfg.distill;
  const bool lolcats = d.method == "lolcats";
  const int64_t stage1_steps = lolcats ? d.stage1_steps : 0;  // Liger has no attention transfer
  if (rank0) {
    for (const std::string& note : claim_run_dir(cfg, checkpoint_root(cfg), !resume.empty()))  // launch/run_dir.h
      std::printf("%s\n", note.c_str());
    check_writable(checkpoint_root(cfg), cfg.checkpoint.dir.empty() ? "train.run_dir (its checkpoints/)" : "checkpoint.dir");
    fs::create_directories(cfg.train.run_dir);
    std::ofstream(fs::path(cfg.train.run_dir) / "config.yaml") << config_to_yaml(cfg);
    if (console_options().print_config) std::printf("# resolved config\n%s", config_to_yaml(cfg).c_str());
  }

  std::vector<int64_t> converted;
  auto student = make_student(*teacher, cfg, &converted);
  set_trainable(*student, false);
  teacher->to(device);
  student->to(device);
  if (rank0)
    std::printf("student: %s, %zu of %lld layers converted, window %lld, %lld parameters; %d data-parallel rank%s on %s\n",
                d.method.c_str(), converted.size(), static_cast<long long>(cfg.model.n_layers),
                static_cast<long long>(d.window), static_cast<long long>(student->num_parameters()), grid.dp(),
                grid.dp() > 1 ? "s" : "", cfg.train.device.c_str());
  LogConfig log_cfg = cfg.log;
  if (!rank0) log_cfg.jsonl = log_cfg.tensorboard = false;
  MetricsWriter metrics(cfg.train.run_dir, log_cfg);
  StageContext ctx{cfg, *student, data, metrics, stage1_steps, dp, device};
  std::unique_ptr<ReduceLROnPlateau> plateau;
  if (cfg.optim.schedule == "plateau") {  // the LoRA stage's rate never goes below optim.min_lr
    PlateauOptions po = plateau_options(cfg.optim);
    po.min_scale = std::min(1.0, cfg.optim.min_lr / d.stage2_lr);
    plateau = std::make_unique<ReduceLROnPlateau>(po);
  }

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
    if (plateau && at.stage == 2) plateau->load(saved.counters, "distill.plateau.");
    data.train->set_cursor({saved.counters.at("data.epoch"), saved.counters.at("data.position")});
    if (rank0) std::printf("resumed from %s at stage %d step %lld\n", ckpt.c_str(), at.stage, static_cast<long long>(at.step));
  }
  if (at.stage == 1) {
    if (stage1_steps > 0) {  // attention transfer: feature maps and window factors only
      auto opt = make_adamw(cfg, attention_transfer_parameters(*student), d.stage1_lr);
      if (!ckpt.empty()) opt->load_state_dict(saved.optimizer);
      // the teacher's mixer inputs and outputs of THIS batch, never stored for the dataset
      run_stage(ctx, 1, at.step, stage1_steps, d.stage1_lr, *opt, "mse", false, [&](const Batch& b) {
        return attention_transfer_loss(*student, teacher_mixer_activations(*teacher, b.inputs, converted));
      }, nullptr);
      set_trainable(*student, false);
    }
    apply_lora(*student, lora_config(cfg));
    student->to(device);  // the new adapters
    at = {2, 0};
  }
  {  // LoRA on the converted layers with the LM loss
    auto opt = make_adamw(cfg, trainable_parameters(*student), d.stage2_lr);
    if (at.step > 0) opt->load_state_dict(saved.optimizer);
    student->train();
    run_stage(ctx, 2, at.step, d.stage2_steps, d.stage2_lr, *opt, "loss", true,
              [&](const Batch& b) { return student->loss(b.inputs, b.targets).total; }, plateau.get());
  }
  merge_lora(*student);
  student->eval();
  DistillSummary s;
  s.run_dir = cfg.train.run_dir;
  if (!rank0) return s;  // the replicas are identical: rank 0 exports and evaluates
  const int64_t total_steps = stage1_steps + d.stage2_steps;
  CheckpointState out;
  out.step = total_steps;
  out.model = student->state_dict();
  out.config_yaml = config_to_yaml(cfg);
  const std::string student_root = (fs::path(cfg.train.run_dir) / "student").string();
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
