// run_dir.cpp — the run-folder guard and the writability probe (see run_dir.h).
#include "launch/run_dir.h"
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include "core/error.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

// The names a run writes into its run folder (launch/trainer.cpp, launch/metrics.cpp).
const char* const kRunFiles[] = {"config.yaml", "metrics.jsonl", "final.json", "tb"};

bool is_checkpoint_name(const std::string& name) {
  return name.rfind("ckpt-", 0) == 0 && name.size() > 5 && std::isdigit(static_cast<unsigned char>(name[5]));
}

std::string join(const std::vector<std::string>& xs) {
  std::string s;
  for (size_t i = 0; i < xs.size(); ++i) s += (i ? ", " : "") + xs[i];
  return s;
}

}  // namespace

namespace {
// (shown name, path) of every entry of a previous run.
std::vector<std::pair<std::string, fs::path>> previous_run(const std::string& run_dir, const std::string& checkpoint_root) {
  std::vector<std::pair<std::string, fs::path>> out;
  std::error_code ec;
  for (const char* name : kRunFiles)
    if (fs::exists(fs::path(run_dir) / name, ec)) out.emplace_back(name, fs::path(run_dir) / name);
  if (fs::is_directory(checkpoint_root, ec)) {
    const fs::path rel = fs::path(checkpoint_root).lexically_proximate(run_dir);
    const std::string prefix = rel.empty() || rel.string().rfind("..", 0) == 0 ? checkpoint_root : rel.string();
    for (auto& e : fs::directory_iterator(checkpoint_root, ec))
      if (is_checkpoint_name(e.path().filename().string()))
        out.emplace_back(prefix + "/" + e.path().filename().string(), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

std::vector<std::string> previous_run_files(const std::string& run_dir, const std::string& checkpoint_root) {
  std::vector<std::string> out;
  for (auto& [name, path] : previous_run(run_dir, checkpoint_root)) out.push_back(name);
  return out;
}

std::vector<std::string> claim_run_dir(const Config& cfg, const std::string& checkpoint_root, bool resuming) {
  std::vector<std::string> notes;
  if (resuming) return notes;
  const std::string& dir = cfg.train.run_dir;
  const auto found = previous_run(dir, checkpoint_root);
  if (found.empty()) return notes;
  if (!cfg.train.overwrite) {
    std::vector<std::string> shown;
    for (size_t i = 0; i < found.size() && i < 6; ++i) shown.push_back(found[i].first);
    if (shown.size() < found.size()) shown.push_back("... " + std::to_string(found.size() - shown.size()) + " more");
    throw Error(detail::concat("train.run_dir: '", dir, "' holds another run (", join(shown),
                               "); continue it with --resume auto, start over with --set train.overwrite=true, "
                               "or choose a new folder with --set train.run_dir=..."));
  }
  for (auto& [name, path] : found) {
    std::error_code ec;
    fs::remove_all(path, ec);
    SKEIN_CHECK(!ec, "train.overwrite: cannot remove ", path.string(), ": ", ec.message());
  }
  notes.push_back(detail::concat("note: train.overwrite: removed the previous run's files from ", dir, " (",
                                 found.size(), " entries)"));
  return notes;
}

void check_writable(const std::string& dir, const std::string& key) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  SKEIN_CHECK(!ec, key, ": cannot create the folder '", dir, "': ", ec.message());
  SKEIN_CHECK(fs::is_directory(dir), key, ": '", dir, "' is not a folder");
  const fs::path probe = fs::path(dir) / (".skein-write-probe-" + std::to_string(::getpid()));
  {
    std::ofstream f(probe);
    const int err = errno;
    SKEIN_CHECK(f.good(), key, ": the folder '", dir, "' is not writable (", std::strerror(err), ")");
    f << "probe\n";
    f.flush();
    SKEIN_CHECK(f.good(), key, ": cannot write into '", dir, "' (disk full?)");
  }
  fs::remove(probe, ec);
}

}  // namespace skein
