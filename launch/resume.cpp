// resume.cpp — loading a run's checkpoint with verification and fallback (see resume.h).
#include "launch/resume.h"
#include "core/ops.h"
#include "launch/checkpoint.h"
#include "launch/checkpoint_verify.h"

namespace skein {
namespace {

// Loads dir into model, optimizer and cursor; returns the step. A CorruptCheckpoint passes
// through as it is (the caller may fall back); other errors (another model) say so.
int64_t restore(const std::string& dir, const Config& cfg, const ProcessGrid& grid, HybridLM& model,
                DistributedOptimizer& opt, BatchSource& data) {
  std::map<std::string, Shape> shapes;
  for (const auto& [name, t] : model.state_dict()) shapes[name] = t.shape();
  CheckpointState st = load_parallel_checkpoint(dir, grid, model.tp_splits(), shapes);  // may throw CorruptCheckpoint
  try {
    model.load_state_dict(st.model);
  } catch (const Error& e) {
    throw Error(detail::concat("resume from ", dir, ": the checkpoint is from a different model: ", e.what()));
  }
  check_resume_config(st.config_yaml, cfg, dir + "/state.h5:config_yaml");
  opt.load_state_dict(st.optimizer);
  SKEIN_CHECK(st.counters.count("data.epoch") && st.counters.count("data.position"), "resume from ", dir,
              ": the checkpoint has no data cursor (counters data.epoch, data.position)");
  data.set_cursor({st.counters.at("data.epoch"), st.counters.at("data.position")});
  return st.step;
}

// The reason `dir` fails to verify on any rank ("" when it loaded everywhere); collective.
// Every rank learns the lowest failing rank's reason.
std::string try_restore(const std::string& dir, const Config& cfg, const ProcessGrid& grid, HybridLM& model,
                        DistributedOptimizer& opt, BatchSource& data, int64_t& step) {
  std::string why;
  try {
    step = restore(dir, cfg, grid, model, opt, data);
  } catch (const CorruptCheckpoint& e) {
    why = e.what();
  }
  Communicator& world = grid.world();
  Tensor first = full({1}, -(why.empty() ? world.size() : world.rank()), DType::i64);  // max of -rank: the lowest
  world.all_reduce(first, ReduceOp::max);
  const int64_t failing = -first.data<int64_t>()[0];
  if (failing == world.size()) return "";
  Tensor len = full({1}, static_cast<double>(why.size()), DType::i64);
  world.broadcast(len, static_cast<int>(failing));
  Tensor bytes = Tensor::empty({len.data<int64_t>()[0]}, DType::i64);
  for (size_t i = 0; i < why.size() && world.rank() == failing; ++i) bytes.data<int64_t>()[i] = static_cast<unsigned char>(why[i]);
  if (bytes.numel() > 0) world.broadcast(bytes, static_cast<int>(failing));
  std::string out;
  for (int64_t i = 0; i < bytes.numel(); ++i) out += static_cast<char>(bytes.data<int64_t>()[i]);
  return out.empty() ? "a rank failed to read it" : out;
}

}  // namespace

Resumed resume_run(const std::string& resume, const std::string& root, const Config& cfg, const ProcessGrid& grid,
                   HybridLM& model, DistributedOptimizer& opt, BatchSource& data) {
  Resumed r;
  if (resume.empty()) return r;
  if (resume != "auto") {
    const std::string why = try_restore(resume, cfg, grid, model, opt, data, r.step);
    if (!why.empty()) throw CorruptCheckpoint(detail::concat("resume from ", resume, ": ", why));
    r.dir = resume;
    return r;
  }
  const std::vector<std::string> candidates = checkpoints_newest_first(root);
  for (const std::string& dir : candidates) {
    const std::string why = try_restore(dir, cfg, grid, model, opt, data, r.step);
    if (why.empty()) {
      r.dir = dir;
      return r;
    }
    r.notes.push_back("resume: skipped " + dir + ": " + why);
  }
  if (candidates.empty()) return r;  // nothing saved yet: a fresh start
  std::string all;
  for (const auto& n : r.notes) all += "\n  " + n;
  throw CorruptCheckpoint(detail::concat("--resume auto: none of the ", candidates.size(), " checkpoints under ", root,
                                         " verifies:", all));
}

}  // namespace skein
