// sweep_changes.cpp — a sweep's started runs against the sweep's current settings
// (run_config_changes, see sweep.h): the saved <run_dir>/config.yaml and the sweep's config
// for the run are compared key by key over the config schema, so an edited sweep never
// silently reuses (or resumes) a run trained with other settings.
#include <filesystem>
#include <fstream>
#include <sstream>
#include "configs/loader.h"
#include "configs/registry.h"
#include "core/error.h"
#include "launch/sweep.h"

namespace fs = std::filesystem;

namespace skein {

std::vector<std::string> run_config_changes(const SweepPlan& plan, const SweepRun& run) {
  const fs::path saved_path = fs::path(run.run_dir) / "config.yaml";
  if (!fs::exists(saved_path)) return {};
  std::ifstream in(saved_path);
  std::stringstream text;
  text << in.rdbuf();
  const Config want = load_config(plan.base_config, run.overrides);
  Config have;
  try {
    have = parse_config(text.str(), saved_path.string());
  } catch (const Error& e) {  // e.g. written by a version with other keys
    return {std::string("config.yaml does not read as a config of this version: ") + e.what()};
  }
  std::vector<std::string> changes;
  for (const ConfigKey& k : config_schema()) {
    if (k.name == "train.threads") continue;  // speed only
    const std::string a = format_config_value(k.get(have)), b = format_config_value(k.get(want));
    // filled in by the trainer from the data when the config leaves them at 0
    if ((k.name == "model.vocab_size" || k.name == "model.input_dim") && b == "0") continue;
    if (a != b) changes.push_back(k.name + ": run " + a + ", sweep " + b);
  }
  return changes;
}

OnChange parse_on_change(const std::string& s) {
  SKEIN_CHECK(s == "refuse" || s == "rerun", "sweep: --on-change must be 'refuse' or 'rerun', got '", s, "'");
  return s == "rerun" ? OnChange::rerun : OnChange::refuse;
}

std::string retire_run(const SweepRun& run) {
  fs::path to;
  for (int n = 1;; ++n) {
    to = run.run_dir + ".stale-" + std::to_string(n);
    if (!fs::exists(to)) break;
  }
  fs::rename(run.run_dir, to);
  return to.string();
}

}  // namespace skein
