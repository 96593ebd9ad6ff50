// rank_agreement.cpp — the start-of-job config agreement check (see rank_agreement.h).
#include "launch/rank_agreement.h"
#include "configs/loader.h"
#include "configs/registry.h"
#include "core/error.h"
#include "core/ops.h"

namespace skein {
namespace {

// A string through a broadcast from `root` (one byte an i64 element: the texts are small).
std::string broadcast_string(Communicator& world, const std::string& s, int root) {
  Tensor len = full({1}, static_cast<double>(s.size()), DType::i64);
  world.broadcast(len, root);
  const int64_t n = len.data<int64_t>()[0];
  Tensor bytes = Tensor::empty({n}, DType::i64);
  if (world.rank() == root)
    for (int64_t i = 0; i < n; ++i) bytes.data<int64_t>()[i] = static_cast<unsigned char>(s[static_cast<size_t>(i)]);
  if (n > 0) world.broadcast(bytes, root);
  std::string out(static_cast<size_t>(n), '\0');
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<char>(bytes.data<int64_t>()[i]);
  return out;
}

}  // namespace

uint64_t fnv1a64(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string first_config_difference(const std::string& yaml, const std::string& resume_point,
                                    const std::string& ref_yaml, const std::string& ref_resume_point) {
  if (yaml != ref_yaml) {
    const Config a = parse_config(yaml, "this rank's config"), b = parse_config(ref_yaml, "rank 0's config");
    for (const auto& k : config_schema())
      if (k.get(a) != k.get(b))
        return k.name + ": " + format_config_value(k.get(a)) + " vs " + format_config_value(k.get(b));
  }
  if (resume_point != ref_resume_point) return "the resume point: '" + resume_point + "' vs '" + ref_resume_point + "'";
  return "";
}

void check_ranks_agree(Communicator& world, const std::string& config_yaml, const std::string& resume_point) {
  if (world.size() == 1) return;
  const uint64_t h = fnv1a64(config_yaml + '\0' + resume_point);
  // The hash as two exact 32-bit halves (i64 tensors round-trip through double in full()).
  Tensor mine = Tensor::empty({2}, DType::i64);
  mine.data<int64_t>()[0] = static_cast<int64_t>(h >> 32);
  mine.data<int64_t>()[1] = static_cast<int64_t>(h & 0xffffffffu);
  Tensor ref = mine.clone();
  world.broadcast(ref, 0);
  const bool same = mine.data<int64_t>()[0] == ref.data<int64_t>()[0] && mine.data<int64_t>()[1] == ref.data<int64_t>()[1];
  Tensor first = full({1}, -(same ? world.size() : world.rank()), DType::i64);  // max of the negation: the lowest
  world.all_reduce(first, ReduceOp::max);
  const int bad = static_cast<int>(-first.data<int64_t>()[0]);
  if (bad == world.size()) return;
  // The lowest disagreeing rank compares with rank 0's texts and tells everyone.
  const std::string ref_yaml = broadcast_string(world, config_yaml, 0);
  const std::string ref_resume = broadcast_string(world, resume_point, 0);
  std::string diff;
  if (world.rank() == bad) {
    try {
      diff = first_config_difference(config_yaml, resume_point, ref_yaml, ref_resume);
    } catch (const std::exception& e) {
      diff = std::string("(cannot compare: ") + e.what() + ")";
    }
    if (diff.empty()) diff = "(the texts differ, but no key does)";
  }
  diff = broadcast_string(world, diff, bad);
  throw Error(detail::concat("rank ", bad, " disagrees with rank 0 on ", diff, " (rank ", bad, "'s value first); every rank "
                             "of a job must run the same config and resume point: give every rank the same --config, "
                             "--set and --resume"));
}

}  // namespace skein
