// prep_input.cpp — input expansion, decompression, binary detection and document cutting for
// `skein prep` (see prep_input.h).
#include "data/prep_input.h"
#include <glob.h>
#include <zlib.h>
#include <zstd.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include "core/error.h"

namespace skein {
namespace fs = std::filesystem;
namespace {

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string gunzip(const std::string& file) {
  gzFile g = gzopen(file.c_str(), "rb");
  SKEIN_CHECK(g, "prep: cannot open '", file, "' (gzip)");
  std::string out;
  char buf[1 << 16];
  int n = 0;
  while ((n = gzread(g, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  int err = 0;
  const std::string msg = n < 0 ? gzerror(g, &err) : "";
  gzclose(g);
  SKEIN_CHECK(n == 0, "prep: '", file, "' is not valid gzip (zlib: ", msg, ")");
  return out;
}

std::string unzstd(const std::string& file, const std::string& compressed) {
  ZSTD_DCtx* ctx = ZSTD_createDCtx();
  SKEIN_CHECK(ctx, "prep: out of memory decompressing '", file, "'");
  std::string out;
  std::vector<char> buf(ZSTD_DStreamOutSize());
  ZSTD_inBuffer in{compressed.data(), compressed.size(), 0};
  size_t ret = 0;
  while (in.pos < in.size) {
    ZSTD_outBuffer o{buf.data(), buf.size(), 0};
    ret = ZSTD_decompressStream(ctx, &o, &in);
    if (ZSTD_isError(ret)) break;
    out.append(buf.data(), o.pos);
  }
  ZSTD_freeDCtx(ctx);
  SKEIN_CHECK(!ZSTD_isError(ret), "prep: '", file, "' is not valid zstd (", ZSTD_getErrorName(ret), ")");
  SKEIN_CHECK(ret == 0, "prep: '", file, "' ends inside a zstd frame (truncated?)");
  return out;
}

// Length of the valid UTF-8 sequence at s[i], or 0.
size_t utf8_len(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  return n;
}

}  // namespace

std::vector<std::string> prep_input_files(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    if (in == "-") { files.push_back(in); continue; }
    std::error_code ec;
    std::vector<std::string> paths;
    if (!fs::exists(in, ec) && in.find_first_of("*?[") != std::string::npos) {
      glob_t g{};
      const int rc = ::glob(in.c_str(), 0, nullptr, &g);
      for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i) paths.push_back(g.gl_pathv[i]);
      globfree(&g);
      SKEIN_CHECK(!paths.empty(), "prep: the pattern '", in, "' matches no file");
    } else {
      SKEIN_CHECK(fs::exists(in, ec), "prep: input '", in, "' does not exist");
      paths.push_back(in);
    }
    for (const std::string& p : paths) {
      if (fs::is_directory(p, ec)) {
        std::vector<std::string> found;
        for (const auto& e : fs::recursive_directory_iterator(p))
          if (e.is_regular_file()) found.push_back(e.path().string());
        std::sort(found.begin(), found.end());
        files.insert(files.end(), found.begin(), found.end());
      } else {
        SKEIN_CHECK(fs::is_regular_file(p, ec), "prep: input '", p, "' is not a regular file or folder");
        files.push_back(p);
      }
    }
  }
  return files;
}

std::string read_input_file(const std::string& file) {
  std::ifstream f(file, std::ios::binary);
  SKEIN_CHECK(f, "prep: cannot read '", file, "'");
  std::string raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto b = [&](size_t i) { return static_cast<unsigned char>(raw[i]); };
  if (raw.size() >= 2 && b(0) == 0x1f && b(1) == 0x8b) return gunzip(file);
  if (raw.size() >= 4 && b(0) == 0x28 && b(1) == 0xb5 && b(2) == 0x2f && b(3) == 0xfd) return unzstd(file, raw);
  return raw;
}

bool is_jsonl_name(const std::string& file) {
  std::string s = file;
  for (const char* z : {".gz", ".zst"})
    if (has_suffix(s, z)) s.resize(s.size() - std::string(z).size());
  return has_suffix(s, ".jsonl") || has_suffix(s, ".ndjson");
}

std::string binary_reason(std::string_view text) {
  const std::string_view head = text.substr(0, 65536);
  const size_t nul = head.find('\0');
  if (nul != std::string_view::npos) return "a NUL byte at offset " + std::to_string(nul);
  size_t bad = 0;
  for (size_t i = 0; i < head.size();) {
    const size_t n = utf8_len(head, i);
    if (n == 0) ++bad, ++i;
    else i += n;
  }
  if (bad * 10 > head.size())  // over 10% invalid
    return std::to_string(bad) + " of its first " + std::to_string(head.size()) + " bytes are not UTF-8";
  return "";
}

int64_t for_each_document(const std::string& file, std::string_view text, const PrepInputOptions& opt,
                          const std::function<void(std::string_view)>& fn) {
  if (!opt.allow_binary) {
    const std::string why = binary_reason(text);
    SKEIN_CHECK(why.empty(), "prep: '", file, "' looks binary (", why,
                "); pass --allow-binary to tokenise it anyway");
  }
  int64_t skipped = 0;
  if (is_jsonl_name(file)) {
    int64_t line_no = 0;
    for (size_t start = 0; start < text.size();) {
      size_t end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      const std::string_view line = text.substr(start, end - start);
      start = end + 1;
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::parse_error& e) {
        throw Error(detail::concat("prep: ", file, ":", line_no, ": not a JSON object (", e.what(), ")"));
      }
      SKEIN_CHECK(j.is_object() && j.contains(opt.text_field), "prep: ", file, ":", line_no, ": no field '",
                  opt.text_field, "' (set --text-field; this line has ",
                  j.is_object() ? "fields " + [&] {
                    std::string s;
                    for (auto& [k, v] : j.items()) s += (s.empty() ? "" : ", ") + k;
                    return s;
                  }() : std::string("no object"), ")");
      SKEIN_CHECK(j[opt.text_field].is_string(), "prep: ", file, ":", line_no, ": field '", opt.text_field,
                  "' is ", j[opt.text_field].type_name(), ", not a string");
      const std::string& doc = j[opt.text_field].get_ref<const std::string&>();
      if (doc.empty()) ++skipped;
      else fn(doc);
    }
    return skipped;
  }
  const std::string& sep = opt.doc_separator;
  for (size_t start = 0;;) {
    const size_t end = sep.empty() ? std::string_view::npos : text.find(sep, start);
    const size_t stop = end == std::string_view::npos ? text.size() : end;
    if (stop > start) fn(text.substr(start, stop - start));
    else ++skipped;
    if (end == std::string_view::npos) break;
    start = end + sep.size();
  }
  return skipped;
}

}  // namespace skein
