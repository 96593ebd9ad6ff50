// sweep.h — `skein sweep`: a sweep YAML expands a grid (and optional random samples) over
// dotted config keys into runs; runs go one after another (skipping finished ones), or are
// emitted as commands / a SLURM array script; a results table (CSV + Markdown) and a plot of
// the loss curves (SVG) are written at the end.
//
// Sweep file:
//   base: configs/hybrid-small.yaml     # the config every run starts from (relative to the sweep file)
//   name: lr-pattern                    # runs go to <out>/<name>/<run name>
//   out: runs/sweeps
//   grid:    {optim.lr: [1e-3, 3e-4], model.layer_pattern: [LLLS, LSLS]}
//   random:  {count: 2, seed: 0, params: {optim.warmup: [10, 100]}}   # optional, uniform over lists
//   set: [train.steps=200]             # fixed overrides for every run
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace skein {

struct SweepRun {
  std::string name;                     // e.g. "optim.lr=0.001,model.layer_pattern=LLLS" made file-safe
  std::string run_dir;
  std::vector<std::string> overrides;   // "key=value", including train.run_dir
};

struct SweepPlan {
  std::string base_config;
  std::string out_dir;
  std::vector<SweepRun> runs;
};

SweepPlan load_sweep(const std::string& sweep_yaml_path);
// A run is finished when <run_dir>/final.json exists (the trainer writes it last).
bool run_finished(const SweepRun& run);
// `skein train` command lines, one per run; and a SLURM array script running them.
std::vector<std::string> sweep_commands(const SweepPlan& plan, const std::string& skein_binary);
std::string slurm_array_script(const SweepPlan& plan, const std::string& skein_binary);
// Runs every unfinished run through `train` (args as for `skein train`), in order; then
// writes <out>/results.csv, results.md and loss.svg from each run's final.json and
// metrics.jsonl. Returns the number of runs that failed.
using TrainFn = std::function<int(const std::vector<std::string>& args)>;
int run_sweep(const SweepPlan& plan, const TrainFn& train);
void write_sweep_results(const SweepPlan& plan);

}  // namespace skein
