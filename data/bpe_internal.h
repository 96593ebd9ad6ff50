// bpe_internal.h — shared internals of byte-level BPE (not a public interface): GPT-2's
// byte <-> printable-symbol map, the pre-split cursor, and the lookup tables that encode and
// decode derive from a BpeTokenizer's vocab / merges / special tokens.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>
#include "data/bpe.h"

namespace skein::bpe_detail {

inline constexpr const char* kEndOfText = "<|endoftext|>";

// GPT-2's bytes_to_unicode: the UTF-8 text of the printable symbol that stands for byte b.
const std::string& byte_symbol(uint8_t b);
// Appends the byte-symbol spelling of `bytes` to `out`.
void append_symbols(std::string_view bytes, std::string& out);
// Maps a byte-symbol string back to bytes (appended to `out`); false when some code point of
// `symbols` is not one of the 256 byte symbols.
bool symbols_to_bytes(std::string_view symbols, std::string& out);

// The end of the GPT-2 pre-split piece that starts at `pos` (< text.size()). Pieces tile the
// text: pos, next_piece(text, pos), ... ends at text.size().
size_t next_piece(std::string_view text, size_t pos);

// A hash for unordered maps keyed by std::string that can be searched with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// (left id << 32 | right id) -> (rank, merged id)
using MergeMap = std::unordered_map<uint64_t, std::pair<int32_t, int32_t>>;

inline uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// Hugging Face's Word::merge_all over one piece, symbols given as ids (overwritten by the result).
struct WordMerger {
  struct Symbol {
    int32_t id, prev, next;
    bool alive;
  };
  struct Merge {
    int32_t rank, pos, new_id;
    bool operator<(const Merge& o) const {  // priority_queue pops the lowest rank, then pos
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<Symbol> sym;
  std::vector<Merge> heap;

  void run(const MergeMap& merges, std::vector<int32_t>& ids) {
    const int32_t n = static_cast<int32_t>(ids.size());
    sym.resize(n);
    heap.clear();
    for (int32_t i = 0; i < n; ++i) sym[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1, true};
    const auto push = [&](int32_t pos, int32_t a, int32_t b) {
      const auto it = merges.find(pair_key(a, b));
      if (it == merges.end()) return;
      heap.push_back({it->second.first, pos, it->second.second});
      std::push_heap(heap.begin(), heap.end());
    };
    for (int32_t i = 0; i + 1 < n; ++i) push(i, ids[i], ids[i + 1]);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const Merge top = heap.back();
      heap.pop_back();
      Symbol& cur = sym[top.pos];
      if (!cur.alive || cur.next < 0) continue;
      const int32_t right = cur.next;
      const auto it = merges.find(pair_key(cur.id, sym[right].id));
      if (it == merges.end() || it->second.second != top.new_id) continue;  // stale entry
      cur.id = top.new_id;
      cur.next = sym[right].next;
      sym[right].alive = false;
      if (cur.next >= 0) sym[cur.next].prev = top.pos;
      if (cur.prev >= 0) push(cur.prev, sym[cur.prev].id, cur.id);
      if (cur.next >= 0) push(top.pos, cur.id, sym[cur.next].id);
    }
    ids.clear();
    for (int32_t i = 0; i >= 0 && i < n; i = sym[i].next) ids.push_back(sym[i].id);
  }
};

// What encode / decode need, derived from (vocab, merges, special) and validated on build.
struct BpeTables {
  std::vector<std::string> vocab;                         // the key: copies of the tokenizer's
  std::vector<std::pair<std::string, std::string>> merges;
  std::map<std::string, int64_t> special;
  std::array<int32_t, 256> byte_id{};                     // byte -> id of its symbol
  MergeMap merge_map;
  std::vector<std::string> id_bytes;                      // id -> the bytes it decodes to
  // Short pieces already encoded, shared by all encode calls (bounded), under word_mu.
  mutable std::mutex word_mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> word_ids;
};

// The tables for `tok`, memoised by content (a small process-wide cache, thread-safe). Each
// call compares tok's fields with the cached copies: ~55 us at 4096 ids, ~350 us at 21k.
// Throws skein::Error when the tokenizer is inconsistent (a merge part not in the vocab, a
// token that is not a byte-symbol string, a byte symbol missing, ...).
std::shared_ptr<const BpeTables> tables_for(const BpeTokenizer& tok);

}  // namespace skein::bpe_detail
