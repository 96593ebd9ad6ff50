// sweep.cpp — `skein sweep`: the sweep YAML into runs (grid product x seeded random samples),
// each run checked against the config schema before anything runs; commands / a SLURM array
// script; running the unfinished runs in order; results.csv, results.md and loss.svg.
//
// Grid: the cartesian product in the order the keys are written (the first key varies
// slowest). Random: `count` distinct combinations of the `params` lists drawn without
// replacement (a sparse Fisher-Yates over the combination index, Philox words from `seed`),
// crossed with every grid point. Runs are started with `--resume auto`, so a sweep stopped
// half-way continues each unfinished run from its newest checkpoint.
#include "launch/sweep.h"
#include <yaml-cpp/yaml.h>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include "configs/loader.h"
#include "core/error.h"
#include "core/rng.h"
#include "launch/plot.h"
#include "launch/progress.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

struct Axis {
  std::string key;
  std::vector<std::string> values;  // YAML text of each value
};

using Fields = std::vector<std::pair<std::string, double>>;

int line_of(const YAML::Node& n) { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }

std::string at(const std::string& file, const YAML::Node& n) { return file + ":" + std::to_string(line_of(n)); }

// A value as override text: scalars as written, lists/maps in YAML flow style.
std::string value_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

// A map of dotted key -> list of values (a scalar is a one-value list); each value is tried
// on a default Config so a bad key or value is reported with the sweep file's line.
std::vector<Axis> read_axes(const YAML::Node& map, const std::string& file, const std::string& what) {
  SKEIN_CHECK(map.IsMap(), at(file, map), ": ", what, " must be a map of config keys to lists of values");
  std::vector<Axis> axes;
  for (const auto& kv : map) {
    Axis a{kv.first.as<std::string>(), {}};
    if (kv.second.IsSequence()) {
      for (const auto& v : kv.second) a.values.push_back(value_text(v));
    } else {
      a.values.push_back(value_text(kv.second));
    }
    SKEIN_CHECK(!a.values.empty(), at(file, kv.second), ": ", what, " key '", a.key, "' has no values");
    for (const auto& v : a.values) {
      Config probe;
      apply_override(probe, a.key + "=" + v, at(file, kv.first) + " (" + what + ")");
    }
    axes.push_back(std::move(a));
  }
  return axes;
}

// The k-th combination of the axes' values (mixed radix, first axis slowest).
std::vector<size_t> combination(const std::vector<Axis>& axes, uint64_t k) {
  std::vector<size_t> idx(axes.size());
  for (size_t j = axes.size(); j-- > 0;) {
    idx[j] = static_cast<size_t>(k % axes[j].values.size());
    k /= axes[j].values.size();
  }
  return idx;
}

uint64_t combinations(const std::vector<Axis>& axes) {
  uint64_t m = 1;
  for (const auto& a : axes) m = m > (uint64_t{1} << 62) / a.values.size() ? (uint64_t{1} << 62) : m * a.values.size();
  return m;
}

// `count` distinct combination indices in [0, m), drawn without replacement (sparse
// Fisher-Yates). The modulo bias of a 64-bit word reduced mod m is at most m / 2^64.
std::vector<uint64_t> sample_without_replacement(uint64_t m, uint64_t count, uint64_t seed) {
  Generator gen(seed);
  std::unordered_map<uint64_t, uint64_t> swapped;
  auto get = [&](uint64_t i) { auto it = swapped.find(i); return it == swapped.end() ? i : it->second; };
  std::vector<uint64_t> out;
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t b = gen.advance(1);
    auto w = philox4x32({static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32), 0, 0},
                        {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
    const uint64_t r = (uint64_t{w[0]} | (uint64_t{w[1]} << 32)) % (m - i);
    const uint64_t j = i + r, vi = get(i), vj = get(j);
    swapped[j] = vi;
    swapped[i] = vj;
    out.push_back(vj);
  }
  return out;
}

// "optim.lr=1e-3,model.layer_pattern=LLLS" -> only [A-Za-z0-9._=,+-], at most ~120 chars.
std::string file_safe(const std::string& s) {
  std::string out;
  for (char c : s) out.push_back(std::isalnum(static_cast<unsigned char>(c)) || std::string("._=,+-").find(c) !=
                                     std::string::npos ? c : '_');
  if (out.empty() || out[0] == '.' || out[0] == '-') out = "_" + out;
  if (out.size() > 120) {  // keep names within filesystem limits; a hash keeps them distinct
    uint64_t h = 1469598103934665603ULL;
    for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    char hex[20];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
    out = out.substr(0, 100) + "-" + hex;
  }
  return out;
}

// A string for a POSIX shell: as is when it has only safe characters, else single-quoted.
std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./=,+:@%-") ==
                        std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// A YAML scalar holding a path: plain when unambiguous, else single-quoted.
std::string yaml_path(const std::string& p) {
  if (p.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./=,+-") ==
          std::string::npos && p.find('/') != std::string::npos && p[0] != '-')
    return p;
  std::string q = "'";
  for (char c : p) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

std::vector<std::string> train_args(const SweepPlan& plan, const SweepRun& run) {
  std::vector<std::string> a = {"--config", plan.base_config};
  for (const auto& o : run.overrides) {
    a.push_back("--set");
    a.push_back(o);
  }
  a.push_back("--resume");
  a.push_back("auto");
  return a;
}

// A flat JSON object of numbers ({"step": 600, "loss": 2.1}); null -> NaN, "nan"/"inf" (as an
// ostream writes them) accepted, string values skipped. nullopt when the text is not one.
std::optional<Fields> parse_flat_json(const std::string& s) {
  size_t i = 0;
  auto ws = [&] { while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i; };
  auto str = [&](std::string& out) {
    if (i >= s.size() || s[i] != '"') return false;
    for (++i; i < s.size() && s[i] != '"'; ++i) {
      if (s[i] == '\\' && i + 1 < s.size()) ++i;
      out.push_back(s[i]);
    }
    return i++ < s.size();
  };
  Fields f;
  ws();
  if (i >= s.size() || s[i++] != '{') return std::nullopt;
  ws();
  if (i < s.size() && s[i] == '}') return f;
  while (true) {
    std::string key, skip;
    ws();
    if (!str(key)) return std::nullopt;
    ws();
    if (i >= s.size() || s[i++] != ':') return std::nullopt;
    ws();
    if (i < s.size() && s[i] == '"') {
      if (!str(skip)) return std::nullopt;
    } else if (s.compare(i, 4, "null") == 0) {
      f.emplace_back(key, NAN), i += 4;
    } else if (s.compare(i, 4, "true") == 0 || s.compare(i, 5, "false") == 0) {
      f.emplace_back(key, s[i] == 't' ? 1.0 : 0.0), i += s[i] == 't' ? 4 : 5;
    } else {
      char* end = nullptr;
      const double v = std::strtod(s.c_str() + i, &end);
      if (end == s.c_str() + i) return std::nullopt;
      f.emplace_back(key, v);
      i = static_cast<size_t>(end - s.c_str());
    }
    ws();
    if (i < s.size() && s[i] == ',') { ++i; continue; }
    if (i < s.size() && s[i] == '}') return f;
    return std::nullopt;
  }
}

std::optional<Fields> read_final(const SweepRun& run) { return read_run_final(run); }

// "loss" against "step" from metrics.jsonl. A resumed run appends steps it logged before;
// as TensorBoard does, a step at or before the last one drops the later points.
PlotSeries loss_curve(const SweepRun& run) {
  PlotSeries s{run.name, {}, {}};
  std::ifstream in(fs::path(run.run_dir) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto f = parse_flat_json(line);
    if (!f) continue;
    double step = NAN, loss = NAN;
    bool has_loss = false;
    for (const auto& [k, v] : *f) {
      if (k == "step") step = v;
      if (k == "loss") loss = v, has_loss = true;
    }
    if (!has_loss || !std::isfinite(step)) continue;
    while (!s.x.empty() && s.x.back() >= step) s.x.pop_back(), s.y.pop_back();
    s.x.push_back(step);
    s.y.push_back(loss);
  }
  if (s.x.empty()) s.label += " (no data)";
  return s;
}

std::string number_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

std::string number_md(double v) {
  if (!std::isfinite(v)) return number_text(v);
  char buf[64];
  std::snprintf(buf, sizeof(buf), std::fabs(v) >= 1000 && std::fabs(v) < 1e12 ? "%.0f" : "%.5g", v);
  return buf;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string md_field(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '|' ? std::string("\\|") : std::string(1, c);
  return o;
}

}  // namespace

SweepPlan load_sweep(const std::string& path) {
  SKEIN_CHECK(fs::is_regular_file(path), "sweep file '", path, "' does not exist");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw Error(path + ":" + std::to_string(e.mark.line + 1) + ": YAML syntax error: " + e.msg);
  }
  SKEIN_CHECK(root.IsMap(), path, ": a sweep file is a map with base, name, out, grid, random, set, plot");
  for (const auto& kv : root) {
    const std::string k = kv.first.as<std::string>();
    SKEIN_CHECK(k == "base" || k == "name" || k == "out" || k == "grid" || k == "random" || k == "set" || k == "plot",
                at(path, kv.first), ": unknown sweep key '", k, "' (valid: base, name, out, grid, random, set, plot)");
  }
  SweepPlan plan;
  std::vector<Axis> grid, random;
  std::vector<std::string> fixed;
  uint64_t count = 0, seed = 0;
  try {
    if (root["base"]) {
      const fs::path b = root["base"].as<std::string>();
      plan.base_config = (b.is_absolute() ? b : (fs::path(path).parent_path() / b)).lexically_normal().string();
    }
    const std::string name = file_safe(root["name"] ? root["name"].as<std::string>() : fs::path(path).stem().string());
    const std::string out = root["out"] ? root["out"].as<std::string>() : "runs/sweeps";
    plan.out_dir = (fs::path(out) / name).lexically_normal().string();
    if (root["grid"]) grid = read_axes(root["grid"], path, "grid");
    if (const YAML::Node r = root["random"]) {
      SKEIN_CHECK(r.IsMap() && r["params"], at(path, r), ": random needs {count: N, seed: S, params: {key: [values]}}");
      for (const auto& kv : r) {
        const std::string k = kv.first.as<std::string>();
        SKEIN_CHECK(k == "count" || k == "seed" || k == "params", at(path, kv.first), ": unknown random key '", k,
                    "' (valid: count, seed, params)");
      }
      const int64_t c = r["count"] ? r["count"].as<int64_t>() : 1;
      SKEIN_CHECK(c >= 1 && c <= 100000, at(path, r["count"]), ": random.count must be in [1, 100000], got ", c);
      count = static_cast<uint64_t>(c);
      seed = r["seed"] ? r["seed"].as<uint64_t>() : 0;
      random = read_axes(r["params"], path, "random.params");
      SKEIN_CHECK(count <= combinations(random), at(path, r["count"]), ": random.count ", count, " exceeds the ",
                  combinations(random), " distinct combinations of random.params (use grid for all of them)");
    }
    if (const YAML::Node s = root["set"]) {
      if (s.IsMap()) {
        for (const auto& kv : s) fixed.push_back(kv.first.as<std::string>() + "=" + value_text(kv.second));
      } else {
        SKEIN_CHECK(s.IsSequence(), at(path, s), ": set must be a list of key=value (or a map)");
        for (const auto& v : s) fixed.push_back(v.as<std::string>());
      }
      for (const auto& f : fixed) {
        Config probe;
        apply_override(probe, f, at(path, s) + " (set)");
      }
    }
    if (const YAML::Node p = root["plot"]) {
      SKEIN_CHECK(p.IsMap() && p["x"] && p["y"] && p.size() == 2, at(path, p),
                  ": plot needs {x: <a grid key>, y: <a final.json field>}");
      plan.plot_x = p["x"].as<std::string>();
      plan.plot_y = p["y"].as<std::string>();
      SKEIN_CHECK(std::any_of(grid.begin(), grid.end(), [&](const Axis& a) { return a.key == plan.plot_x; }),
                  at(path, p["x"]), ": plot.x '", plan.plot_x, "' is not a grid key");
      for (const Axis& a : grid)
        if (a.key == plan.plot_x)
          for (const std::string& v : a.values) {
            char* end = nullptr;
            std::strtod(v.c_str(), &end);
            SKEIN_CHECK(!v.empty() && *end == '\0', at(path, p["x"]), ": plot.x '", plan.plot_x, "' has the value '", v,
                        "', not a number");
          }
    }
  } catch (const YAML::Exception& e) {
    throw Error(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  // every key set once; train.run_dir belongs to the sweep
  std::set<std::string> seen = {"train.run_dir"};
  auto claim = [&](const std::string& key, const char* where) {
    SKEIN_CHECK(seen.insert(key).second, path, ": key '", key, "' in ", where,
                key == "train.run_dir" ? " is set by the sweep (<out>/<name>/<run>)" : " is given twice");
  };
  for (const auto& f : fixed) claim(f.substr(0, f.find('=')), "set");
  for (const auto& a : grid) claim(a.key, "grid");
  for (const auto& a : random) claim(a.key, "random.params");

  // points = grid combinations x random samples; each is one value index per axis
  std::vector<Axis> axes = grid;
  axes.insert(axes.end(), random.begin(), random.end());
  std::vector<uint64_t> samples = random.empty() ? std::vector<uint64_t>{0}
                                                 : sample_without_replacement(combinations(random), count, seed);
  const uint64_t n_grid = combinations(grid);
  SKEIN_CHECK(n_grid <= 100000 && n_grid * samples.size() <= 100000, path, ": the sweep expands to ", n_grid, " grid points x ", samples.size(),
              " samples (more than 100000 runs)");
  std::vector<std::vector<size_t>> points;  // a value index per axis, per run
  for (uint64_t g = 0; g < n_grid; ++g) {
    for (uint64_t r : samples) {
      points.push_back(combination(grid, g));
      const auto ridx = combination(random, r);
      points.back().insert(points.back().end(), ridx.begin(), ridx.end());
    }
  }
  std::vector<bool> varies(axes.size(), false);  // a key names runs when its value differs between them
  for (const auto& pt : points)
    for (size_t j = 0; j < axes.size(); ++j) varies[j] = varies[j] || pt[j] != points[0][j];
  std::set<std::string> names;
  for (const auto& pt : points) {
    SweepRun run;
    run.overrides = fixed;
    std::string label;
    for (size_t j = 0; j < axes.size(); ++j) {
      const std::string kv = axes[j].key + "=" + axes[j].values[pt[j]];
      run.overrides.push_back(kv);
      if (varies[j]) label += (label.empty() ? "" : ",") + kv;
    }
    const std::string stem = file_safe(label.empty() ? "run" : label);
    run.name = stem;
    for (int k = 2; !names.insert(run.name).second; ++k) run.name = stem + "-" + std::to_string(k);
    run.run_dir = (fs::path(plan.out_dir) / run.name).string();
    run.overrides.push_back("train.run_dir=" + yaml_path(run.run_dir));
    plan.runs.push_back(std::move(run));
  }
  for (const auto& run : plan.runs) {  // the whole schema and the cross-key rules, before anything runs
    try {
      load_config(plan.base_config, run.overrides);
    } catch (const Error& e) {
      throw Error(path + ": run '" + run.name + "': " + e.what());
    }
  }
  return plan;
}

bool run_finished(const SweepRun& run) { return fs::exists(fs::path(run.run_dir) / "final.json"); }

std::vector<std::string> sweep_commands(const SweepPlan& plan, const std::string& skein_binary) {
  std::vector<std::string> cmds;
  for (const auto& run : plan.runs) {
    std::string c = shell_quote(skein_binary) + " train";
    for (const auto& a : train_args(plan, run)) {
      c += ' ';
      c += shell_quote(a);
    }
    cmds.push_back(c);
  }
  return cmds;
}

std::string slurm_array_script(const SweepPlan& plan, const std::string& skein_binary) {
  SKEIN_CHECK(!plan.runs.empty(), "sweep: the plan for '", plan.out_dir, "' has no runs");
  std::string job = fs::path(plan.out_dir).filename().string();
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# skein sweep " << plan.out_dir << ": " << plan.runs.size() << " runs, one array task each.\n"
    << "# Submit with: sbatch <this file>   (task i runs commands[i]; finished runs can be resubmitted:\n"
    << "# each resumes from its newest checkpoint)\n"
    << "#SBATCH --job-name=skein-" << file_safe(job) << "\n"
    << "#SBATCH --array=0-" << plan.runs.size() - 1 << "\n"
    << "set -euo pipefail\n"
    << "cd " << shell_quote(fs::current_path().string()) << "\n"
    << "commands=(\n";
  for (const auto& c : sweep_commands(plan, skein_binary)) s << "  " << shell_quote(c) << "\n";
  s << ")\n"
    << "eval \"${commands[$SLURM_ARRAY_TASK_ID]}\"\n";
  return s.str();
}

int run_sweep(const SweepPlan& plan, const TrainFn& train, OnChange on_change) {
  // Started runs whose settings changed: all named before anything runs.
  std::vector<std::vector<std::string>> changes(plan.runs.size());
  std::string report;
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    changes[i] = run_config_changes(plan, plan.runs[i]);
    if (changes[i].empty()) continue;
    report += "\n  " + plan.runs[i].run_dir + (run_finished(plan.runs[i]) ? " (finished)" : " (started)") + ":";
    for (const auto& c : changes[i]) report += "\n    " + c;
  }
  SKEIN_CHECK(report.empty() || on_change == OnChange::rerun, "sweep: these runs were trained with other settings than ",
              "the sweep's now:", report, "\nre-run them with --on-change rerun (their folders are kept as ",
              "<run>.stale-N), or move them away");
  int failed = 0;
  size_t trained = 0;
  double trained_seconds = 0;
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    const SweepRun& run = plan.runs[i];
    if (!changes[i].empty()) {
      const std::string old = retire_run(run);
      std::printf("sweep: [%zu/%zu] %s: %zu setting(s) changed (%s%s); the old run is now %s\n", i + 1, plan.runs.size(),
                  run.name.c_str(), changes[i].size(), changes[i][0].c_str(), changes[i].size() > 1 ? ", ..." : "",
                  old.c_str());
    } else if (run_finished(run)) {
      std::printf("sweep: [%zu/%zu] %s: finished, skipped\n", i + 1, plan.runs.size(), run.name.c_str());
      continue;
    }
    size_t left = 0;  // this run and the unfinished ones after it
    for (size_t j = i; j < plan.runs.size(); ++j) left += j == i || !run_finished(plan.runs[j]) || !changes[j].empty();
    const std::string eta = trained ? ProgressLine::duration(trained_seconds / static_cast<double>(trained) *
                                                             static_cast<double>(left))
                                    : "?";
    std::printf("sweep: [%zu/%zu] %s | eta %s\n", i + 1, plan.runs.size(), run.name.c_str(), eta.c_str());
    std::fflush(stdout);
    const auto t0 = std::chrono::steady_clock::now();
    int rc = 1;
    try {
      rc = train(train_args(plan, run));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sweep: run %s failed: %s\n", run.name.c_str(), e.what());
    }
    ++trained;
    trained_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rc != 0) {
      ++failed;
      std::fprintf(stderr, "sweep: run %s failed (exit %d); going on\n", run.name.c_str(), rc);
    }
  }
  write_sweep_results(plan);
  return failed;
}

void write_sweep_results(const SweepPlan& plan) {
  fs::create_directories(plan.out_dir);
  auto [keys, run_values] = swept_keys(plan);
  // final.json fields: the union over runs, in order of appearance
  std::vector<std::optional<Fields>> finals;
  std::vector<std::string> fields;
  for (const auto& run : plan.runs) {
    finals.push_back(read_final(run));
    if (finals.back())
      for (const auto& [k, v] : *finals.back())
        if (std::find(fields.begin(), fields.end(), k) == fields.end()) fields.push_back(k);
  }
  if (fields.empty()) fields = {"step", "loss", "val_loss", "val_ppl", "tokens_per_s", "metric"};

  std::ofstream csv(fs::path(plan.out_dir) / "results.csv"), md(fs::path(plan.out_dir) / "results.md");
  SKEIN_CHECK(csv && md, "sweep: cannot write results in '", plan.out_dir, "'");
  csv << "run";
  md << "# Sweep results: " << plan.out_dir << "\n\n| run";
  for (const auto& k : keys) csv << "," << csv_field(k), md << " | " << md_field(k);
  for (const auto& f : fields) csv << "," << csv_field(f), md << " | " << md_field(f);
  csv << "\n";
  md << " |\n|---";
  for (size_t j = 0; j < keys.size() + fields.size(); ++j) md << "|---";
  md << "|\n";
  std::string best;
  double best_val = INFINITY;
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    csv << csv_field(plan.runs[i].name);
    md << "| " << md_field(plan.runs[i].name);
    for (const auto& k : keys) {
      const std::string v = run_values[i].count(k) ? run_values[i][k] : "-";
      csv << "," << csv_field(v), md << " | " << md_field(v);
    }
    for (const auto& f : fields) {
      std::optional<double> v;
      if (finals[i])
        for (const auto& [k, x] : *finals[i])
          if (k == f) v = x;
      csv << "," << (v ? number_text(*v) : "-");
      md << " | " << (v ? number_md(*v) : "-");
      if (f == "val_loss" && v && *v < best_val) best_val = *v, best = plan.runs[i].name;
    }
    csv << "\n";
    md << " |\n";
  }
  if (!best.empty()) md << "\nLowest val_loss: **" << md_field(best) << "** (" << number_md(best_val) << ")\n";

  std::vector<PlotSeries> curves;
  for (const auto& run : plan.runs) curves.push_back(loss_curve(run));
  std::ofstream svg(fs::path(plan.out_dir) / "loss.svg");
  svg << svg_line_plot(curves, {"training loss: " + plan.out_dir, "step", "loss"});
  SKEIN_CHECK(csv && md && svg, "sweep: writing results in '", plan.out_dir, "' failed");
  if (!plan.plot_x.empty()) write_sweep_plot(plan);
}

SweptKeys swept_keys(const SweepPlan& plan) {
  SweptKeys sk;
  std::map<std::string, std::set<std::string>> values;
  sk.run_values.resize(plan.runs.size());
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    for (const auto& o : plan.runs[i].overrides) {
      const std::string k = o.substr(0, o.find('=')), v = o.substr(std::min(o.size(), o.find('=') + 1));
      if (k == "train.run_dir") continue;
      if (!values.count(k)) sk.keys.push_back(k);
      values[k].insert(v);
      sk.run_values[i][k] = v;
    }
  }
  std::erase_if(sk.keys, [&](const std::string& k) { return values[k].size() < 2; });
  return sk;
}

std::optional<std::vector<std::pair<std::string, double>>> read_run_final(const SweepRun& run) {
  std::ifstream in(fs::path(run.run_dir) / "final.json");
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_flat_json(ss.str());
}

}  // namespace skein
