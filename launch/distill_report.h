// distill_report.h — what `skein distill` reports at the end (launch/distill.h): the
// generation benchmark's helpers, the side-by-side table and distill.json.
#pragma once
#include <vector>
#include "launch/distill.h"
#include "launch/trainer.h"
#include "layers/mixer.h"

namespace skein {

// MB held by the per-layer caches (KV caches, recurrent states).
double cache_mb(const std::vector<MixerCache>& caches);
// One row of the teacher / student table on stdout.
void print_row(const char* who, const RunSummary& e, const GenerationBench& g);
// <run_dir>/distill.json, written atomically.
void write_summary(const DistillSummary& s);

}  // namespace skein
