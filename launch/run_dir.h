// run_dir.h — the run folder at the start of a run: a fresh run never writes into a folder
// that holds another run (config.yaml, metrics.jsonl, final.json, tb/, checkpoints), unless
// it resumes (`--resume`) or the user asked to start over (train.overwrite=true, which
// removes the previous run's files first); the checkpoint folder is checked for writability
// before the first step (not at the first save, after the whole run).
#pragma once
#include <string>
#include <vector>
#include "configs/config.h"

namespace skein {

// The files and folders of a previous run found in run_dir and checkpoint_root (relative
// names for run_dir's, "checkpoints/ckpt-000200"-like for checkpoints), sorted.
std::vector<std::string> previous_run_files(const std::string& run_dir, const std::string& checkpoint_root);

// Called once per job (rank 0) before anything is written. resuming: the run continues a
// checkpoint (its files are continued). Otherwise a folder holding another run is an error
// naming the folder, what it holds, and the three ways on (`--resume auto`,
// `--set train.overwrite=true`, a new train.run_dir); with cfg.train.overwrite the previous
// run's files are removed (a note says so). Returns the notes to print.
std::vector<std::string> claim_run_dir(const Config& cfg, const std::string& checkpoint_root, bool resuming);

// Creates `dir` if needed and writes and removes a probe file in it; an error names `key`,
// the folder and the reason (a read-only or missing parent, a full disk).
void check_writable(const std::string& dir, const std::string& key);

}  // namespace skein
