// bpe_train.cpp — train_bpe: learns byte-level BPE merges from texts.
//
// reference: Sennrich et al. 2016, "Neural Machine Translation of Rare Words with Subword
// Units" (BPE merges); Radford et al. 2019 (byte-level symbols, the GPT-2 pre-split).
//
// The texts are pre-split (pretokenize) and identical pieces counted: each distinct piece is a
// word, a sequence of token ids that starts as its bytes (ids 0..255 are the byte symbols).
// Pair counts (weighted by word counts) and, per pair, the list of words that contain it are
// kept up to date: a merge rewrites only the words listed under the chosen pair and adjusts the
// counts of the pairs in those words. The pair merged is the most frequent one, ties going to
// the smaller (left id, right id); a max-heap with lazy deletion finds it (entries whose count
// is out of date are skipped). When a merged string is already a token (two different pairs
// can spell the same string), its id is reused; no pair is merged twice.
#include <algorithm>
#include <queue>
#include <unordered_set>
#include "core/error.h"
#include "data/bpe.h"
#include "data/bpe_internal.h"

namespace skein {
namespace {

struct Word {
  std::vector<int32_t> syms;
  int64_t count;
};

struct Candidate {
  int64_t count;
  uint64_t pair;
  bool operator<(const Candidate& o) const {  // the heap's top: highest count, then lowest pair
    return count != o.count ? count < o.count : pair > o.pair;
  }
};

// Distinct pre-split pieces of all texts with their counts, in byte order (deterministic).
std::vector<Word> count_words(const std::vector<std::string>& texts) {
  std::unordered_map<std::string, int64_t, bpe_detail::StringHash, std::equal_to<>> counts;
  for (const std::string& text : texts) {
    const std::string_view sv(text);
    for (size_t pos = 0; pos < sv.size();) {
      const size_t end = bpe_detail::next_piece(sv, pos);
      const std::string_view piece = sv.substr(pos, end - pos);
      pos = end;
      if (auto it = counts.find(piece); it != counts.end())
        ++it->second;
      else
        counts.emplace(std::string(piece), 1);
    }
  }
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words(sorted.size());
  for (size_t w = 0; w < sorted.size(); ++w) {
    for (char ch : sorted[w].first) words[w].syms.push_back(static_cast<uint8_t>(ch));
    words[w].count = sorted[w].second;
  }
  return words;
}

class Trainer {
 public:
  explicit Trainer(std::vector<Word> words) : words_(std::move(words)), stamp_(words_.size(), -1) {
    for (int32_t w = 0; w < static_cast<int32_t>(words_.size()); ++w) {
      const auto& s = words_[w].syms;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = bpe_detail::pair_key(s[i], s[i + 1]);
        pair_count_[k] += words_[w].count;
        note(k, w);
      }
    }
    for (const auto& [k, c] : pair_count_) heap_.push({c, k});
  }

  // The most frequent pair not merged before; false when no pair is left.
  bool best(int32_t& a, int32_t& b) {
    while (!heap_.empty()) {
      const Candidate top = heap_.top();
      heap_.pop();
      const auto it = pair_count_.find(top.pair);
      if (it == pair_count_.end() || it->second != top.count || merged_.count(top.pair)) continue;
      a = static_cast<int32_t>(top.pair >> 32);
      b = static_cast<int32_t>(top.pair & 0xFFFFFFFFu);
      return true;
    }
    return false;
  }

  // Replaces every (a, b) in the words that hold it by z, updating pair counts and lists.
  void merge(int32_t a, int32_t b, int32_t z) {
    const uint64_t ab = bpe_detail::pair_key(a, b);
    merged_.insert(ab);
    ++iteration_;
    const std::vector<int32_t> list = std::move(where_[ab]);
    where_.erase(ab);
    delta_.clear();
    for (const int32_t w : list) {
      if (stamp_[w] == iteration_) continue;  // listed twice
      stamp_[w] = iteration_;
      std::vector<int32_t>& s = words_[w].syms;
      const int64_t c = words_[w].count;
      bool found = false;
      for (size_t i = 0; i + 1 < s.size() && !found; ++i) found = s[i] == a && s[i + 1] == b;
      if (!found) continue;  // the list entry is out of date
      for (size_t i = 0; i + 1 < s.size(); ++i) delta_[bpe_detail::pair_key(s[i], s[i + 1])] -= c;
      size_t out = 0;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          s[out++] = z;
          i += 2;
        } else {
          s[out++] = s[i++];
        }
      }
      s.resize(out);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = bpe_detail::pair_key(s[i], s[i + 1]);
        delta_[k] += c;
        if (s[i] == z || s[i + 1] == z) note(k, w);
      }
    }
    for (const auto& [k, d] : delta_) {
      if (d == 0) continue;
      const int64_t now = (pair_count_[k] += d);
      SKEIN_ASSERT(now >= 0, "train_bpe: negative pair count ", now);
      if (now == 0)
        pair_count_.erase(k);
      else
        heap_.push({now, k});
    }
  }

 private:
  void note(uint64_t k, int32_t w) {
    std::vector<int32_t>& v = where_[k];
    if (v.empty() || v.back() != w) v.push_back(w);
  }

  std::vector<Word> words_;
  std::vector<int32_t> stamp_;  // the merge iteration that last visited each word
  int32_t iteration_ = 0;
  std::unordered_map<uint64_t, int64_t> pair_count_;
  std::unordered_map<uint64_t, std::vector<int32_t>> where_;  // pair -> words (may be stale)
  std::unordered_map<uint64_t, int64_t> delta_;
  std::unordered_set<uint64_t> merged_;
  std::priority_queue<Candidate> heap_;
};

}  // namespace

BpeTokenizer train_bpe(const std::vector<std::string>& texts, int64_t vocab_size) {
  SKEIN_CHECK(vocab_size >= 257 && vocab_size <= (int64_t{1} << 30), "train_bpe: vocab_size ",
              vocab_size, " must be in [257, 2^30] (256 byte symbols + merges + <|endoftext|>)");
  BpeTokenizer tok;
  for (int b = 0; b < 256; ++b) {
    tok.vocab.push_back(bpe_detail::byte_symbol(static_cast<uint8_t>(b)));
    tok.token_to_id[tok.vocab.back()] = b;
  }
  Trainer trainer(count_words(texts));
  int32_t a = 0, b = 0;
  while (static_cast<int64_t>(tok.vocab.size()) < vocab_size - 1 && trainer.best(a, b)) {
    std::string joined = tok.vocab[a] + tok.vocab[b];
    auto [it, fresh] = tok.token_to_id.emplace(joined, static_cast<int64_t>(tok.vocab.size()));
    if (fresh) tok.vocab.push_back(std::move(joined));
    tok.merges.emplace_back(tok.vocab[a], tok.vocab[b]);
    trainer.merge(a, b, static_cast<int32_t>(it->second));
  }
  const int64_t eos = static_cast<int64_t>(tok.vocab.size());
  tok.vocab.push_back(bpe_detail::kEndOfText);
  tok.token_to_id[bpe_detail::kEndOfText] = eos;
  tok.special[bpe_detail::kEndOfText] = eos;
  return tok;
}

}  // namespace skein
