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
//   plot: {x: data.mqar_num_kv_pairs, y: mqar_accuracy}   # optional: final y vs the grid key x
#pragma once
#include <map>
#include <optional>
#include <utility>
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
  std::string plot_x, plot_y;  // plot: a grid key (numeric values) and a final.json field; empty: none
};

SweepPlan load_sweep(const std::string& sweep_yaml_path);
// A run is finished when <run_dir>/final.json exists (the trainer writes it last).
bool run_finished(const SweepRun& run);
// What differs between the config a run was trained with (<run_dir>/config.yaml, written by
// the trainer) and the sweep's config for it, one "key: run <old>, sweep <new>" per key, in
// schema order. Keys the trainer fills in from the data (model.vocab_size, model.input_dim
// left at 0) and train.threads (speed only) are not compared. Empty when the run has no
// config.yaml (never started) or nothing differs. (launch/sweep_changes.cpp)
std::vector<std::string> run_config_changes(const SweepPlan& plan, const SweepRun& run);
// What run_sweep does with a started run whose settings changed: refuse (throw before any run
// starts, naming every such run and its keys) or rerun (move its folder to <run_dir>.stale-N
// and train it afresh). Runs whose settings did not change are skipped / resumed as before.
enum class OnChange { refuse, rerun };
OnChange parse_on_change(const std::string& s);  // "refuse" | "rerun"
// Moves a run's folder aside to <run_dir>.stale-N (the first free N >= 1); returns the new path.
std::string retire_run(const SweepRun& run);
// `skein train` command lines, one per run; and a SLURM array script running them.
std::vector<std::string> sweep_commands(const SweepPlan& plan, const std::string& skein_binary);
std::string slurm_array_script(const SweepPlan& plan, const std::string& skein_binary);
// Runs every unfinished run through `train` (args as for `skein train`), in order, printing
// "sweep: [i/n] <run> | eta <time>" before each (the ETA: the runs left times the mean time
// of the runs this call trained); started runs whose settings changed are handled per
// `on_change`. Then writes <out>/results.csv, results.md and loss.svg from each run's
// final.json and metrics.jsonl. Returns the number of runs that failed.
using TrainFn = std::function<int(const std::vector<std::string>& args)>;
int run_sweep(const SweepPlan& plan, const TrainFn& train, OnChange on_change = OnChange::refuse);
void write_sweep_results(const SweepPlan& plan);
// The keys swept: those whose value differs between runs (not train.run_dir), in order of first
// appearance, and each run's value of every key it sets.
struct SweptKeys {
  std::vector<std::string> keys;
  std::vector<std::map<std::string, std::string>> run_values;  // [run] key -> value
};
SweptKeys swept_keys(const SweepPlan& plan);
// A run's final.json as (field, value) pairs; nullopt when it is missing or not flat JSON.
std::optional<std::vector<std::pair<std::string, double>>> read_run_final(const SweepRun& run);
// plot: <out>/<y>.svg — each run's final y against its value of x, one line per combination of
// the other keys that vary (launch/sweep_plot.cpp). Called by write_sweep_results.
void write_sweep_plot(const SweepPlan& plan);

}  // namespace skein
