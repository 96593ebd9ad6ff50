// rank_agreement.h — every rank of a job checks at start that it runs the same resolved config
// and resume point as rank 0 (a 64-bit FNV-1a hash compared first; on a mismatch the texts are
// compared key by key). Ranks that disagree would otherwise deadlock in mismatched collectives
// (different step counts, grids, run folders); instead every rank stops within seconds with one
// message naming the differing key and both values.
#pragma once
#include <cstdint>
#include <string>
#include "parallel/communicator.h"

namespace skein {

uint64_t fnv1a64(const std::string& text);

// Collective over world. config_yaml: config_to_yaml of this rank's config; resume_point: what
// this rank would resume from (e.g. "auto -> runs/x/checkpoints/ckpt-000200"). Throws the
// same skein::Error on every rank when any rank differs from rank 0:
// "rank 1 disagrees with rank 0 on train.steps: 30 vs 20 (...)".
void check_ranks_agree(Communicator& world, const std::string& config_yaml, const std::string& resume_point);

// The first difference between two configs given as config_to_yaml text (or between the resume
// points), "" when equal: "train.steps: 30 vs 20" (this, reference).
std::string first_config_difference(const std::string& yaml, const std::string& resume_point,
                                    const std::string& ref_yaml, const std::string& ref_resume_point);

}  // namespace skein
