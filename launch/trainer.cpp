// trainer.cpp — the training run (see trainer.h). The step loop in train() reads as a page;
// everything around it (data, resume, logging, checkpoints) is in small helpers.
#include "launch/trainer.h"
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include "configs/loader.h"
#include "core/backend.h"
#include "launch/device_setup.h"
#include "core/allocator.h"
#include "core/cpu/gemm.h"
#include "core/precision.h"
#include "core/threadpool.h"
#include "data/synthetic.h"
#include "data/tokenizer.h"
#include "launch/checkpoint.h"
#include "launch/memory_estimate.h"
#include "launch/metrics.h"
#include "launch/parallel_options.h"
#include "launch/progress.h"
#include "launch/rank_agreement.h"
#include "launch/resume.h"
#include "launch/run_dir.h"
#include "layers/generate.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
#include "parallel/data_parallel.h"
#include "parallel/distributed_optimizer.h"
#include "parallel/grid.h"
#include "parallel/model_parallel.h"
#include "parallel/mpi_comm.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace skein {
namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

AdamWOptions adamw_options(const OptimConfig& o) {
  AdamWOptions a;
  a.lr = o.lr;
  a.beta1 = o.beta1;
  a.beta2 = o.beta2;
  a.eps = o.eps;
  a.weight_decay = o.weight_decay;
  return a;
}

// The optimizer over this rank's parameters (its tensor-parallel shard), or with
// parallel.zero1 AdamW sharded over the dp x sp group.
std::unique_ptr<DistributedOptimizer> make_optimizer(const Config& cfg, const ProcessGrid& grid, HybridLM& model) {
  const OptimConfig& o = cfg.optim;
  SKEIN_CHECK(!cfg.parallel.zero1 || o.name != "sgd", "parallel.zero1 shards AdamW's state; optim.name is sgd");
  std::unique_ptr<Optimizer> local;
  if (cfg.parallel.zero1) {
    // AdamW runs sharded inside the DistributedOptimizer
  } else if (o.name == "sgd") {
    SGDOptions s;
    s.lr = o.lr;
    s.momentum = o.momentum;
    s.weight_decay = o.weight_decay;
    local = std::make_unique<SGD>(model.named_parameters(), s);
  } else {
    local = std::make_unique<AdamW>(model.named_parameters(), adamw_options(o));
  }
  return std::make_unique<DistributedOptimizer>(grid, model.named_parameters(), model.tp_splits(), std::move(local),
                                                cfg.parallel.zero1, adamw_options(o), data_parallel_options(cfg.parallel));
}

// This rank's part of a batch: its sequence-parallel slice of every sequence (contiguous,
// in rank order; inputs and targets cut alike).
Batch sequence_slice(const Batch& b, const ProcessGrid& grid) {
  if (grid.sp() == 1) return b;
  auto cut = [&](const Tensor& t) {
    const int64_t n = t.size(1) / grid.sp();
    return t.narrow(1, grid.sp_rank() * n, n).contiguous();
  };
  return {cut(b.inputs), cut(b.targets)};
}

LrSchedule make_schedule(const Config& cfg) {
  LrSchedule s;
  s.peak_lr = cfg.optim.lr;
  s.min_lr = cfg.optim.min_lr;
  s.warmup = cfg.optim.warmup;
  s.total = cfg.train.steps;
  s.decay = parse_lr_decay(cfg.optim.schedule);
  SKEIN_CHECK(cfg.model.weight_dtype != DType::bf16, "model.weight_dtype=bf16 stores frozen weights (a distillation "
              "teacher, eval, generate); skein train needs trainable weights (train.precision=bf16-mixed computes in bf16)");
  SKEIN_CHECK(s.decay != LrDecay::plateau, "optim.schedule=plateau: ReduceLROnPlateau steps on the validation loss "
              "of skein distill's LoRA stage; skein train supports cosine, linear and constant");
  return s;
}

std::string checkpoint_root(const Config& cfg) {
  return cfg.checkpoint.dir.empty() ? (fs::path(cfg.train.run_dir) / "checkpoints").string() : cfg.checkpoint.dir;
}

// Every rank calls it (collective): the writers of each tp shard write their files, rank 0
// the counters, config and manifest; the folder appears atomically once all are written.
void save(const Config& cfg, const ProcessGrid& grid, HybridLM& model, const DistributedOptimizer& opt,
          const BatchSource& data, int64_t step) {
  CheckpointState st;
  st.step = step;
  st.model = model_tensors_stored_as(to_host(model.state_dict()), cfg.checkpoint.dtype);  // device-independent
  st.optimizer = to_host(opt.state_dict());
  st.counters["data.epoch"] = data.cursor().epoch;
  st.counters["data.position"] = data.cursor().position;
  st.config_yaml = config_to_yaml(cfg);
  save_parallel_checkpoint(checkpoint_root(cfg), grid, st, model.tp_splits());
  if (grid.world().rank() == 0) prune_checkpoints(checkpoint_root(cfg), cfg.checkpoint.keep);
}

void write_final(const RunSummary& r) {
  std::ofstream f(fs::path(r.run_dir) / "final.json.tmp");
  f.precision(17);
  f << "{\"step\": " << r.step << ", \"loss\": " << r.loss << ", \"val_loss\": " << r.val_loss
    << ", \"val_ppl\": " << r.val_ppl << ", \"tokens_per_s\": " << r.tokens_per_s << ", \"metric\": " << r.metric;
  if (!r.icl.empty()) f << ", \"icl_per_point\": " << icl_curves_json(r.icl);
  if (!r.metric_name.empty()) f << ", \"" << r.metric_name << "\": " << r.metric;  // "metric" named by what it is
  f << "}\n";
  f.close();
  fs::rename(fs::path(r.run_dir) / "final.json.tmp", fs::path(r.run_dir) / "final.json");
}

// Every tp rank of a replica generates in lockstep (collectives inside); `print`: this one prints.
void print_sample(HybridLM& model, const Config& cfg, const std::string& tokenizer_identity, bool print) {
  if (cfg.train.sample_tokens <= 0 || tokenizer_identity.empty()) return;
  auto tok = tokenizer_from_identity(tokenizer_identity);
  std::vector<int64_t> prompt = tok->encode_with_template(cfg.train.sample_prompt);
  if (prompt.empty()) prompt.push_back(tok->eos_id());
  SamplingOptions so;
  so.max_new_tokens = cfg.train.sample_tokens;
  so.temperature = 0.8;
  so.top_k = 40;
  so.seed = cfg.train.seed;
  std::vector<int64_t> out = generate(model, prompt, so);
  if (print) std::printf("sample: %s\n", tok->decode(out).c_str());
}

// Backward of one micro-batch on this rank. The LM term is weighted by `lm_weight` (this
// micro-batch's share of the global token count, times the group size: the reduce averages).
// The MoM aux term is built from routing statistics summed over the whole global batch
// (ModelParallel::batch_sum: identity backward), so each rank holds only its part of its
// gradient: it is weighted by the group size, which the average over the group cancels, and
// by 1 / grad_accum (the aux term of a step is the mean over its micro-batches).
void backward_weighted(const LossParts& parts, double lm_weight, int group, const Config& cfg) {
  if (!parts.aux.defined()) return mul(parts.total, lm_weight).backward();
  const double aux_weight = cfg.model.mom_aux_loss_scale * group / static_cast<double>(cfg.train.grad_accum);
  add(mul(parts.lm, lm_weight), mul(parts.aux, aux_weight)).backward();
}

// MQAR accuracy, when evaluate() computed it (not under sp): on every eval line, in
// metrics.jsonl and TensorBoard as "mqar_accuracy".
bool has_mqar_accuracy(const Config& cfg, const ProcessGrid& grid) { return cfg.data.source == "mqar" && grid.sp() == 1; }
// "val loss L | val ppl P[ | mqar accuracy A]"; in-context regression's loss is a mean squared
// error, which has no perplexity: "val mse L".
std::string eval_text(const Config& cfg, const ProcessGrid& grid, const RunSummary& e) {
  if (cfg.data.source == "icl_regression") return fmt("val mse %.4f", e.val_loss);
  return fmt("val loss %.4f | val ppl %.2f", e.val_loss, e.val_ppl) +
         (has_mqar_accuracy(cfg, grid) ? " | mqar accuracy " + std::to_string(e.metric) : "");
}
std::map<std::string, double> eval_scalars(const Config& cfg, const ProcessGrid& grid, const RunSummary& e) {
  std::map<std::string, double> s{{"val_loss", e.val_loss}};
  if (cfg.data.source != "icl_regression") s["val_ppl"] = e.val_ppl;
  if (has_mqar_accuracy(cfg, grid)) s["mqar_accuracy"] = e.metric;
  return s;
}

}  // namespace

void resolve_model_inputs(Config& cfg) {
  if (cfg.data.source != "icl_regression") return;
  cfg.model.input_dim = cfg.data.icl_dim + 1;
  if (cfg.model.vocab_size == 0) cfg.model.vocab_size = 2;  // unused by a continuous model
}

DataSources make_data(Config& cfg, int64_t dp_rank, int64_t dp_size) {
  DataSources d;
  const DataConfig& dc = cfg.data;
  if (dc.source == "hdf5" && !dc.paths.empty()) return make_blended_data(cfg, dp_rank, dp_size);  // launch/data_blend.cpp
  if (dc.source == "hdf5") {
    TokenFile file = TokenFile::open(dc.path);
    if (cfg.model.vocab_size == 0) cfg.model.vocab_size = file.vocab_size();
    SKEIN_CHECK(cfg.model.vocab_size >= file.vocab_size(), "model.vocab_size ", cfg.model.vocab_size,
                " is smaller than the vocabulary of ", dc.path, " (", file.vocab_size(), ")");
    d.train = std::make_unique<Loader>(file, "train", dc.seq_len, dc.batch_size, dp_rank, dp_size, dc.seed, dc.shuffle);
    if (file.split("val").size() > dc.seq_len)
      d.val = std::make_unique<Loader>(file, "val", dc.seq_len, dc.batch_size, 0, 1, dc.seed, false);
    else
      std::printf("note: %s has %lld validation tokens (< data.seq_len + 1): no validation\n", dc.path.c_str(),
                  static_cast<long long>(file.split("val").size()));
    d.tokenizer_identity = file.tokenizer_identity();
  } else if (dc.source == "mqar") {
    SKEIN_CHECK(cfg.model.vocab_size >= 4, "model.vocab_size must be set (>= 4) for data.source mqar, got ",
                cfg.model.vocab_size);
    MqarOptions m;
    m.vocab_size = cfg.model.vocab_size;
    m.seq_len = dc.seq_len;
    m.num_kv_pairs = dc.mqar_num_kv_pairs;
    m.random_non_queries = dc.mqar_random_non_queries;
    MqarOptions train_mix = m;  // evaluation stays at num_kv_pairs
    train_mix.min_kv_pairs = dc.mqar_min_kv_pairs;
    train_mix.min_seq_len = dc.mqar_min_seq_len;
    train_mix.curriculum_examples = dc.mqar_curriculum_interval * dc.batch_size * dp_size * cfg.train.grad_accum;
    d.train = std::make_unique<MqarSource>(train_mix, dc.batch_size, dc.seed, dp_rank, dp_size);
    d.val = std::make_unique<MqarSource>(m, dc.batch_size, dc.seed + 1000003);
  } else {  // icl_regression
    IclRegressionOptions r;
    r.dim = dc.icl_dim;
    r.n_points = dc.icl_points;
    r.noise = dc.icl_noise;
    resolve_model_inputs(cfg);
    IclCurriculum cur;
    SKEIN_CHECK(!dc.icl_curriculum || cfg.parallel.sp == 1, "data.icl_curriculum: the curriculum changes the "
                "sequence length during training, which parallel.sp (", cfg.parallel.sp, ") > 1 cannot split");
    if (dc.icl_curriculum)
      cur = {dc.icl_curriculum_start_dim, dc.icl_curriculum_start_points, dc.icl_curriculum_dim_step,
             dc.icl_curriculum_points_step, dc.icl_curriculum_interval * dc.batch_size * dp_size * cfg.train.grad_accum};
    d.train = std::make_unique<IclRegressionSource>(r, dc.batch_size, dc.seed, dp_rank, dp_size, cfg.model.dtype, cur);
    d.val = std::make_unique<IclRegressionSource>(r, dc.batch_size, dc.seed + 1000003, 0, 1, cfg.model.dtype);
  }
  return d;
}

RunSummary evaluate(HybridLM& model, BatchSource& src, const Config& cfg, int64_t batches, const ProcessGrid* grid) {
  NoGradGuard no_grad;
  src.set_cursor({0, 0});  // every evaluation sees the same batches
  const bool split = grid && (grid->sp() > 1 || grid->tp() > 1);
  // MQAR accuracy needs the whole logits of each sequence: forward() gathers them over tp
  // ranks, but under sp each rank holds only its slice of every sequence's logits (skipped).
  const bool mqar = cfg.data.source == "mqar" && !(grid && grid->sp() > 1);
  const bool icl = cfg.data.source == "icl_regression";
  double loss = 0, metric = 0;
  const Device dev = model.device();
  const bool show = !grid || grid->world().rank() == 0;  // in place on a terminal only (progress.h)
  ProgressLine bar("eval", batches, 0, show ? ProgressLine::Mode::automatic : ProgressLine::Mode::off);
  RunSummary r;
  for (int64_t i = 0; i < batches; ++i) {
    const auto t0 = Clock::now();
    Batch b = src.next();  // on the host; batch_to moves what the model reads
    if (mqar) {
      Tensor logits = model.forward(b.inputs.to(dev));  // [B, T, V] on every rank (tp: collectives inside)
      loss += cross_entropy(logits.reshape({-1, cfg.model.vocab_size}), b.targets.reshape({-1}).to(dev)).item();
      metric += mqar_accuracy(logits.to(Device::cpu), b.targets);
    } else if (icl && !split) {  // the per-point curve beside the classical estimators
      Tensor pred = model.predict(b.inputs.to(dev)).to(Device::cpu);
      loss += icl_regression_mse(pred, b.targets);
      r.icl.add(pred, b.inputs, b.targets);
    } else if (split) {  // every rank sees the same batch: combine the sp slices' means
      Batch part = sequence_slice(b, *grid);
      const int64_t n = is_floating(part.targets.dtype()) ? part.targets.numel() : count_targets(part.targets);
      part = batch_to(part, dev);
      const double part_loss = model.loss(part.inputs, part.targets).lm.item();  // every rank: collectives inside
      loss += global_mean_loss(grid->sp_comm(), n ? part_loss : 0.0, n);
    } else {
      b = batch_to(b, dev);
      loss += model.loss(b.inputs, b.targets).lm.item();
    }
    bar.tick(i + 1, static_cast<double>(b.targets.numel()), seconds_since(t0));
  }
  bar.finish();
  if (!r.icl.empty()) r.icl.finish();
  r.val_loss = loss / static_cast<double>(batches);
  r.val_ppl = cfg.data.source == "icl_regression" ? 0.0 : std::exp(r.val_loss);
  r.metric = mqar ? metric / static_cast<double>(batches) : cfg.data.source == "icl_regression" ? r.val_loss : 0.0;
  r.metric_name = mqar ? "mqar_accuracy" : cfg.data.source == "icl_regression" ? "mse" : "";
  return r;
}

RunSummary train(Config cfg, const std::string& resume) {
  int mpi_on = 0;
  MPI_Initialized(&mpi_on);
  std::unique_ptr<Communicator> world;
  if (mpi_on) world = MpiComm::world();
  else world = std::make_unique<SingleProcessComm>();
  // Ranks that disagree on the config or resume point stop here with the key, not hang later.
  check_ranks_agree(*world, config_to_yaml(cfg),
                    resume == "auto" ? "auto -> " + latest_checkpoint(checkpoint_root(cfg)) : resume);
  const ParallelConfig& pc = cfg.parallel;
  ProcessGrid grid(*world, static_cast<int>(pc.dp), static_cast<int>(pc.sp), static_cast<int>(pc.tp));
  grid.check_seq_len(cfg.data.seq_len);
  Communicator& dp = grid.dp_sp_comm();  // the ranks holding other tokens of the global batch
  const bool rank0 = world->rank() == 0;
  set_num_threads(cfg.train.threads > 0 ? static_cast<int>(cfg.train.threads) : threads_per_rank(*world));
  const Device device = setup_device(cfg, world->rank());
#ifdef SKEIN_HAVE_NCCL
  const bool nccl_built = true;
#else
  const bool nccl_built = false;
#endif
  resolve_backend(pc, device, world->size(), device == Device::cuda ? cuda_device_count() : 0, nccl_built);
  DataSources data = make_data(cfg, grid.dp_rank(), grid.dp());
  validate_config(cfg);
  if (cfg.optim.warmup > cfg.train.steps) {  // a short run of a long config: warm up over the whole run
    if (rank0)
      std::printf("note: optim.warmup (%lld) exceeds train.steps (%lld): the warm-up is clamped to %lld steps\n",
                  static_cast<long long>(cfg.optim.warmup), static_cast<long long>(cfg.train.steps),
                  static_cast<long long>(cfg.train.steps));
    cfg.optim.warmup = cfg.train.steps;
  }
  const std::string yaml = config_to_yaml(cfg);
  if (rank0) {  // a fresh run never writes into another run's folder; both folders writable now
    for (const std::string& note : claim_run_dir(cfg, checkpoint_root(cfg), !resume.empty())) std::printf("%s\n", note.c_str());
    check_writable(cfg.train.run_dir, "train.run_dir");
    check_writable(checkpoint_root(cfg), cfg.checkpoint.dir.empty() ? "train.run_dir (its checkpoints/)" : "checkpoint.dir");
    if (console_options().print_config) std::printf("# resolved config\n%s", yaml.c_str());
    std::ofstream(fs::path(cfg.train.run_dir) / "config.yaml") << yaml;
  }

  HybridLM model(cfg.model, std::make_shared<CommModelParallel>(grid, pc.softmax_sp, lasp2_options(pc)));
  model.to(device);  // parameters first: the optimizer's state is made where they live
  model.set_recompute(parse_recompute(cfg.train.recompute));
  model.fused_head = cfg.train.fused_head;
  const PrecisionScope precision_scope(parse_precision(cfg.train.precision), device);  // restored on return
  PrecisionPolicy& precision = PrecisionPolicy::current();  // train.precision: which op runs in which dtype
  if (rank0 && !precision_scope.note().empty()) std::printf("%s\n", precision_scope.note().c_str());
  // Before optimizer state and activations exist: will one step fit? (names the biggest consumers;
  // host memory: on a GPU the caching allocator's out-of-memory error names the request instead)
  if (device == Device::cpu) check_step_memory(estimate_step_memory(cfg, model.num_parameters()), available_memory_bytes());
  std::unique_ptr<DistributedOptimizer> opt = make_optimizer(cfg, grid, model);
  const LrSchedule schedule = make_schedule(cfg);
  const Resumed resumed = resume_run(resume, checkpoint_root(cfg), cfg, grid, model, *opt, *data.train);
  int64_t step = resumed.step;
  for (const std::string& note : resumed.notes)
    if (rank0) std::printf("%s\n", note.c_str());
  if (rank0 && !resumed.dir.empty()) {
    std::printf("resumed from %s at step %lld\n", resumed.dir.c_str(), static_cast<long long>(step));
    if (const int64_t n = truncate_metrics_after(cfg.train.run_dir, step))  // steps trained again appear once
      std::printf("metrics: dropped %lld lines past step %lld from metrics.jsonl\n", static_cast<long long>(n),
                  static_cast<long long>(step));
  }
  broadcast_parameters(dp, model.named_parameters());  // every replica starts from rank 0's
  LogConfig log_cfg = cfg.log;
  if (!rank0) log_cfg.jsonl = log_cfg.tensorboard = false;
  MetricsWriter metrics(cfg.train.run_dir, log_cfg);
  // for "% of peak" in the log: sgemm on the CPU, cuBLAS f32 (TF32 when on) on a GPU
  const double peak = device == Device::cpu ? gemm_peak_gflops(device, 1024, 1024, 1024, 3)
                                            : gemm_peak_gflops(device, 8192, 8192, 8192, 5);
  if (rank0)
    std::printf("model: %lld parameters on this rank, %d ranks (dp %d x sp %d x tp %d) x %d threads, sgemm %.1f GFLOP/s, %s\n",
                static_cast<long long>(model.num_parameters()), world->size(), grid.dp(), grid.sp(), grid.tp(),
                num_threads(), peak, precision.describe().c_str());

  RunSummary out;
  out.run_dir = cfg.train.run_dir;
  double tokens_per_s = 0;
  ProgressLine bar("train", cfg.train.steps, step, rank0 ? ProgressLine::Mode::automatic : ProgressLine::Mode::off);
  for (; step < cfg.train.steps; ++step) {
    const auto t0 = Clock::now();
    opt->set_lr(lr_at(schedule, step));
    opt->zero_grad();
    // The loss is the mean over the GLOBAL count of non-ignored targets: micro-batch m of
    // rank r weighs n_m / N (regression targets all count), and the reduce averages over ranks.
    std::vector<Batch> micro(static_cast<size_t>(cfg.train.grad_accum));
    std::vector<int64_t> counts;
    int64_t local_count = 0;
    // tokens this rank's dp slice drew: an in-context regression curriculum shortens sequences
    double step_tokens = 0;
    int64_t step_seq_len = 0;
    for (Batch& b : micro) {
      b = data.train->next();
      step_seq_len = b.inputs.size(1);
      step_tokens += static_cast<double>(b.inputs.size(0) * step_seq_len);
      b = sequence_slice(b, grid);
      counts.push_back(is_floating(b.targets.dtype()) ? b.targets.numel() : count_targets(b.targets));
      local_count += counts.back();
      b = batch_to(b, device);
    }
    const TokenScale ts = global_token_scale(dp, local_count);
    double local_loss = 0;
    precision.begin_step(model.parameters());  // bf16-mixed: weights rounded once for this step
    for (size_t m = 0; m < micro.size(); ++m) {
      LossParts parts = model.loss(micro[m].inputs, micro[m].targets);
      const double weight = ts.local ? ts.scale * static_cast<double>(counts[m]) / static_cast<double>(ts.local) : 0.0;
      if (m + 1 == micro.size()) opt->arm();  // parallel.overlap: buckets reduced during this backward
      backward_weighted(parts, weight, dp.size(), cfg);
      if (ts.local) local_loss += parts.lm.item() * static_cast<double>(counts[m]) / static_cast<double>(ts.local);
    }
    precision.end_step();  // before the optimizer changes the weights
    opt->reduce();  // average the gradients over the dp x sp ranks (waits for the overlapped buckets)
    const double loss = global_mean_loss(dp, local_loss, local_count);
    const double grad_norm = opt->clip(cfg.train.clip_grad_norm);
    if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
      SKEIN_CHECK(cfg.train.on_nan == "skip", "train: the loss is ", loss, " and the gradient norm ", grad_norm,
                  " at step ", step, " (set train.on_nan=skip to skip such steps)");
      bar.line(fmt("step %lld: non-finite loss %g / grad norm %g, step skipped", static_cast<long long>(step), loss, grad_norm));
      continue;
    }
    opt->step();
    // the global batch (sp splits it); tok/s and GFLOP/s are moving averages over the last 20 steps
    bar.tick(step + 1, step_tokens * static_cast<double>(grid.dp()), seconds_since(t0), "loss " + fmt("%.4f", loss));
    tokens_per_s = bar.tokens_per_s();
    out.loss = loss;
    if (rank0 && ((step + 1) % cfg.train.log_every == 0 || step == 0)) {
      // per rank: this dp replica's share of the global tokens, split over its sp x tp ranks
      const double flops_per_s = 3 * model_flops_per_token(cfg.model, step_seq_len) * tokens_per_s /
                                 static_cast<double>(grid.dp() * grid.sp() * grid.tp());
      const StepStats s = step_stats(flops_per_s, peak, device);
      const std::string mixed = precision.requested() == Precision::f32 ? "" : " | " + precision.describe();
      bar.line(fmt("step %6lld | loss %.4f | lr %.2e | grad norm %.3f | %s%s | eta %s", static_cast<long long>(step + 1),
                   loss, opt->lr(), grad_norm, s.text(tokens_per_s).c_str(), mixed.c_str(),
                   ProgressLine::duration(bar.eta_seconds()).c_str()));
      metrics.write(step + 1, s.scalars({{"loss", loss}, {"lr", opt->lr()}, {"grad_norm", grad_norm}, {"tokens_per_s", tokens_per_s}}));
    }
    if (data.val && cfg.train.eval_every > 0 && (step + 1) % cfg.train.eval_every == 0 && step + 1 < cfg.train.steps) {
      RunSummary e = evaluate(model, *data.val, cfg, cfg.train.eval_batches, &grid);  // the same on every rank
      bar.line(fmt("eval   %6lld | %s", static_cast<long long>(step + 1), eval_text(cfg, grid, e).c_str()));
      metrics.write(step + 1, eval_scalars(cfg, grid, e));
    }
    if (cfg.checkpoint.every > 0 && (step + 1) % cfg.checkpoint.every == 0 && step + 1 < cfg.train.steps)
      save(cfg, grid, model, *opt, *data.train, step + 1);
  }
  bar.finish();
  out.step = step;
  out.tokens_per_s = tokens_per_s;
  if (data.val) {
    RunSummary e = evaluate(model, *data.val, cfg, cfg.train.eval_batches, &grid);
    out.val_loss = e.val_loss;
    out.val_ppl = e.val_ppl;
    out.metric = e.metric;
    out.icl = e.icl;
    if (rank0 && !e.icl.empty())  // the in-context learning curve beside the baselines
      std::ofstream(fs::path(cfg.train.run_dir) / "icl_curve.svg")
          << icl_curves_svg(e.icl, "in-context regression, dim " + std::to_string(cfg.data.icl_dim));
    out.metric_name = e.metric_name;
    if (rank0)
      std::printf("final  %6lld | %s\n", static_cast<long long>(step), eval_text(cfg, grid, e).c_str());
    metrics.write(step, eval_scalars(cfg, grid, e));
  }
  metrics.flush();
  save(cfg, grid, model, *opt, *data.train, step);
  if (rank0) {
    out.checkpoint = latest_checkpoint(checkpoint_root(cfg));
    write_final(out);
  }
  // Replica 0's tp ranks generate in lockstep, rank 0 prints (skipped under sp, as MQAR is).
  if (grid.sp() == 1 && grid.dp_rank() == 0) print_sample(model, cfg, data.tokenizer_identity, rank0);
  return out;
}

}  // namespace skein
