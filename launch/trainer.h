// trainer.h — the training run: data source, model, optimizer, schedule, resume, the step
// loop (zero_grad → forward → loss → backward → clip → step → schedule → log → eval →
// checkpoint), and the end-of-run evaluation, final.json and sample.
#pragma once
#include <memory>
#include <string>
#include "configs/config.h"
#include "data/loader.h"
#include "launch/icl_eval.h"
#include "layers/model.h"
#include "parallel/grid.h"

namespace skein {

struct RunSummary {
  int64_t step = 0;
  double loss = 0, val_loss = 0, val_ppl = 0, tokens_per_s = 0;
  double metric = 0;        // mqar accuracy / regression MSE for synthetic tasks
  IclCurves icl;            // in-context regression: the per-point error curves (one process)
  std::string metric_name;  // what `metric` is: "mqar_accuracy", "mse" ("" when there is none)
  std::string run_dir, checkpoint;
};

// What a run trains on: the batch sources and what is needed to evaluate and sample.
struct DataSources {
  std::unique_ptr<BatchSource> train, val;
  std::string tokenizer_identity;  // "" when there is no tokenizer (synthetic tasks)
};

// Fills cfg.model.vocab_size / input_dim from the data where the config leaves them open,
// and builds the sources; the training source is sharded over dp_size data-parallel ranks.
// Errors name the file and the config key.
DataSources make_data(Config& cfg, int64_t dp_rank = 0, int64_t dp_size = 1);
// The part of make_data that shapes the model: model.input_dim for in-context regression
// (a checkpoint's config is rebuilt with it before the model is).
void resolve_model_inputs(Config& cfg);
// make_data for a blend (data.paths non-empty): data/blend.h over the train splits, and over the
// val splits when every file has one of at least data.seq_len + 1 tokens.
DataSources make_blended_data(Config& cfg, int64_t dp_rank, int64_t dp_size);

// Trains per cfg. resume: "" (fresh), "auto" (newest checkpoint of the run, if any) or a
// checkpoint folder. Prints progress to stdout; returns the final numbers. Under mpirun
// (MPI initialised) the world is cfg.parallel's grid dp x sp x tp: every rank of an sp group
// holds a contiguous slice of each sequence, every tp rank its shard of the model; gradients
// are averaged over the dp x sp ranks with the loss normalised by the global count of
// non-ignored tokens; rank 0 prints and writes metrics.
RunSummary train(Config cfg, const std::string& resume = "");

// Evaluates `batches` batches of `src`: mean loss (and perplexity for token models; MQAR
// accuracy when the source is MQAR, stored in `metric`). With a grid whose sp or tp is > 1
// every rank of the model's sp x tp group calls it (collective; each rank evaluates its
// slice, the means are combined); MQAR accuracy is then not computed (it needs whole logits).
RunSummary evaluate(HybridLM& model, BatchSource& src, const Config& cfg, int64_t batches,
                    const ProcessGrid* grid = nullptr);

}  // namespace skein
