// data_blend.cpp — the data sources of a run that blends token files (data.paths; see
// data/blend.h and make_blended_data in trainer.h).
#include <cstdio>
#include "data/blend.h"
#include "data/token_file.h"
#include "launch/trainer.h"

namespace skein {

DataSources make_blended_data(Config& cfg, int64_t dp_rank, int64_t dp_size) {
  const DataConfig& dc = cfg.data;
  std::vector<BlendSource> sources;
  for (const DataPath& p : dc.paths) sources.push_back({p.path, p.weight});
  DataSources d;
  auto train = std::make_unique<BlendedLoader>(sources, "train", dc.seq_len, dc.batch_size, dp_rank, dp_size, dc.seed,
                                               dc.shuffle);
  if (cfg.model.vocab_size == 0) cfg.model.vocab_size = train->vocab_size();
  SKEIN_CHECK(cfg.model.vocab_size >= train->vocab_size(), "model.vocab_size ", cfg.model.vocab_size,
              " is smaller than the vocabulary of the data.paths files (", train->vocab_size(), ")");
  d.tokenizer_identity = train->tokenizer_identity();
  bool val_ok = true;
  for (const auto& s : sources) val_ok = val_ok && TokenFile::open(s.path).split("val").size() > dc.seq_len;
  if (val_ok)
    d.val = std::make_unique<BlendedLoader>(sources, "val", dc.seq_len, dc.batch_size, 0, 1, dc.seed, false);
  else
    std::printf("note: a data.paths file has fewer than data.seq_len + 1 validation tokens: no validation\n");
  d.train = std::move(train);
  return d;
}

}  // namespace skein
