// test_sweep.cpp — sweep expansion (grid order, seeded random samples, names), up-front
// validation errors, commands and the SLURM script (executed with a fake binary), run_sweep
// skipping finished runs and counting failures, and the results table and loss plot.
#include <gtest/gtest.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include "configs/loader.h"
#include "core/error.h"
#include "launch/sweep.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

struct TempDir {
  fs::path root;
  explicit TempDir(const std::string& name)
      : root(fs::temp_directory_path() / ("skein_test_sweep_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(root);
    fs::create_directories(root / "sweeps");
    std::ofstream(root / "base.yaml") << "train:\n  steps: 100\noptim:\n  warmup: 10\n";
  }
  ~TempDir() { fs::remove_all(root); }
  // Writes sweeps/<name>.yaml (base ../base.yaml, out <root>/out) plus `body`.
  std::string sweep(const std::string& name, const std::string& body) const {
    const fs::path p = root / "sweeps" / (name + ".yaml");
    std::ofstream(p) << "base: ../base.yaml\nname: " << name << "\nout: " << (root / "out").string() << "\n" << body;
    return p.string();
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string error_of(const std::string& path) {
  try {
    load_sweep(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string value_of(const SweepRun& r, const std::string& key) {
  for (const auto& o : r.overrides)
    if (o.rfind(key + "=", 0) == 0) return o.substr(key.size() + 1);
  return "(unset)";
}

TEST(Sweep, GridIsTheProductInFileOrder) {
  TempDir t("grid");
  SweepPlan plan = load_sweep(t.sweep("g", "grid:\n  optim.lr: [1.0e-3, 3e-4]\n"
                                           "  model.layer_pattern: [LLLS, LSLS, SSSS]\n  optim.warmup: [10]\n"
                                           "set: [train.steps=50]\n"));
  EXPECT_EQ(plan.base_config, (t.root / "base.yaml").string());  // relative to the sweep file
  EXPECT_EQ(plan.out_dir, (t.root / "out" / "g").string());
  ASSERT_EQ(plan.runs.size(), 6u);
  const char* lr[] = {"1.0e-3", "1.0e-3", "1.0e-3", "3e-4", "3e-4", "3e-4"};
  const char* pat[] = {"LLLS", "LSLS", "SSSS", "LLLS", "LSLS", "SSSS"};
  for (size_t i = 0; i < 6; ++i) {
    const SweepRun& r = plan.runs[i];
    // the single-valued key is set but not part of the name
    EXPECT_EQ(r.name, std::string("optim.lr=") + lr[i] + ",model.layer_pattern=" + pat[i]);
    EXPECT_EQ(r.run_dir, (t.root / "out" / "g" / r.name).string());
    EXPECT_EQ(r.overrides, (std::vector<std::string>{"train.steps=50", std::string("optim.lr=") + lr[i],
                                                     std::string("model.layer_pattern=") + pat[i], "optim.warmup=10",
                                                     "train.run_dir=" + r.run_dir}));
  }
}

TEST(Sweep, NoGridIsOneRun) {
  TempDir t("single");
  SweepPlan plan = load_sweep(t.sweep("one", "set: {train.steps: 20}\n"));
  ASSERT_EQ(plan.runs.size(), 1u);
  EXPECT_EQ(plan.runs[0].name, "run");
  EXPECT_EQ(plan.runs[0].overrides[0], "train.steps=20");
}

TEST(Sweep, RandomSamplesAreSeededAndDistinct) {
  TempDir t("random");
  auto body = [](int seed, int count) {
    return "random:\n  count: " + std::to_string(count) + "\n  seed: " + std::to_string(seed) +
           "\n  params: {optim.warmup: [1, 2, 3, 4, 5, 6], optim.beta1: [0.8, 0.9]}\n";
  };
  auto combos = [](const SweepPlan& p) {
    std::vector<std::string> c;
    for (const auto& r : p.runs) c.push_back(value_of(r, "optim.warmup") + "/" + value_of(r, "optim.beta1"));
    return c;
  };
  const auto a = combos(load_sweep(t.sweep("a", body(7, 5)))), b = combos(load_sweep(t.sweep("b", body(7, 5))));
  const auto c = combos(load_sweep(t.sweep("c", body(8, 5))));
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a, b);  // same seed, same runs
  EXPECT_NE(a, c);  // another seed, other runs
  EXPECT_EQ(std::set<std::string>(a.begin(), a.end()).size(), 5u);  // without replacement
  // all 12 combinations: every one exactly once
  const auto all = combos(load_sweep(t.sweep("all", body(3, 12))));
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), 12u);
  EXPECT_NE(error_of(t.sweep("over", body(3, 13))).find("exceeds the 12 distinct combinations"), std::string::npos);

  // grid x random: every grid point gets the same samples
  SweepPlan gr = load_sweep(t.sweep("gr", "grid: {optim.lr: [1e-3, 2e-3]}\nrandom: {count: 3, seed: 1, params: "
                                          "{optim.warmup: [1, 2, 3, 4, 5, 6, 7, 8, 9]}}\n"));
  ASSERT_EQ(gr.runs.size(), 6u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(value_of(gr.runs[i], "optim.lr"), "1e-3");
    EXPECT_EQ(value_of(gr.runs[i + 3], "optim.lr"), "2e-3");
    EXPECT_EQ(value_of(gr.runs[i], "optim.warmup"), value_of(gr.runs[i + 3], "optim.warmup"));
  }
}

TEST(Sweep, NamesAreFileSafeAndUnique) {
  TempDir t("names");
  SweepPlan plan = load_sweep(t.sweep("n", "grid:\n  data.path: [\"a/b c.h5\", a_b_c.h5, \"x:y\"]\n"));
  ASSERT_EQ(plan.runs.size(), 3u);
  std::set<std::string> names;
  for (const auto& r : plan.runs) {
    names.insert(r.name);
    EXPECT_TRUE(std::regex_match(r.name, std::regex("[A-Za-z0-9._=,+-]+"))) << r.name;
  }
  EXPECT_EQ(names.size(), 3u);
  EXPECT_EQ(plan.runs[0].name, "data.path=a_b_c.h5");
  EXPECT_EQ(plan.runs[1].name, "data.path=a_b_c.h5-2");
  EXPECT_EQ(value_of(plan.runs[0], "data.path"), "a/b c.h5");  // the value itself is untouched
}

TEST(Sweep, MistakesFailUpFrontNamingFileAndKey) {
  TempDir t("errors");
  const std::string typo = t.sweep("typo", "grid:\n  optim.lrr: [1e-3]\n");
  std::string e = error_of(typo);
  EXPECT_NE(e.find(typo + ":5"), std::string::npos) << e;  // the line of the key
  EXPECT_NE(e.find("optim.lrr"), std::string::npos) << e;
  EXPECT_NE(e.find("optim.lr'"), std::string::npos) << e;  // the loader's suggestion

  const std::string bad_value = t.sweep("badvalue", "grid:\n  optim.lr: [1e-3, fast]\n");
  e = error_of(bad_value);
  EXPECT_NE(e.find(bad_value), std::string::npos) << e;
  EXPECT_NE(e.find("optim.lr"), std::string::npos) << e;

  // valid key by key, invalid together (min_lr > the lr of base.yaml): found by load_config
  const std::string cross = t.sweep("cross", "grid:\n  optim.min_lr: [1e-5, 5]\n");
  e = error_of(cross);
  EXPECT_NE(e.find(cross), std::string::npos) << e;
  EXPECT_NE(e.find("optim.min_lr=5"), std::string::npos) << e;  // the run's name
  EXPECT_NE(e.find("optim.min_lr: 5.0 exceeds optim.lr"), std::string::npos) << e;

  e = error_of(t.sweep("topkey", "gird:\n  optim.lr: [1e-3]\n"));
  EXPECT_NE(e.find("unknown sweep key 'gird'"), std::string::npos) << e;
  e = error_of(t.sweep("twice", "grid: {optim.lr: [1e-3]}\nset: [optim.lr=2e-3]\n"));
  EXPECT_NE(e.find("'optim.lr' in grid is given twice"), std::string::npos) << e;
  e = error_of(t.sweep("rundir", "set: [train.run_dir=x]\n"));
  EXPECT_NE(e.find("train.run_dir"), std::string::npos) << e;
  EXPECT_NE(error_of((t.root / "missing.yaml").string()).find("does not exist"), std::string::npos);
}

// A fake `skein train`: records its args, writes metrics.jsonl and final.json into run_dir.
struct FakeTrain {
  std::vector<std::vector<std::string>> calls;
  std::set<std::string> fail;  // run names that throw / return 2
  int operator()(const std::vector<std::string>& args) {
    calls.push_back(args);
    std::string run_dir;
    for (const auto& a : args)
      if (a.rfind("train.run_dir=", 0) == 0) run_dir = a.substr(14);
    const std::string name = fs::path(run_dir).filename().string();
    if (fail.count(name) && name.find("LSLS") != std::string::npos) throw Error("boom");
    if (fail.count(name)) return 2;
    fs::create_directories(run_dir);
    const double k = static_cast<double>(calls.size());
    std::ofstream m(fs::path(run_dir) / "metrics.jsonl");
    for (int s = 10; s <= 40; s += 10) m << "{\"step\": " << s << ", \"loss\": " << 5.0 / (s * k) + 2 << "}\n";
    m << "{\"step\": 40, \"val_loss\": 2.5}\n";                  // no "loss": skipped
    m << "{\"step\": 30, \"loss\": 9}\n{\"step\": 40, \"loss\": 1.5}\n";  // a resume from step 20
    std::ofstream(fs::path(run_dir) / "final.json")
        << "{\"step\": 40, \"loss\": 1.5, \"val_loss\": " << (k == 1 ? "nan" : std::to_string(2 + k))
        << ", \"val_ppl\": 9.5, \"tokens_per_s\": 1234, \"metric\": 0}\n";
    return 0;
  }
};

TEST(Sweep, RunSkipsFinishedRunsAndCountsFailures) {
  TempDir t("run");
  SweepPlan plan = load_sweep(t.sweep("r", "grid:\n  model.layer_pattern: [LLLS, LSLS, SSSS]\nset: [train.steps=40]\n"));
  FakeTrain fake;
  fake.fail = {"model.layer_pattern=LSLS", "model.layer_pattern=SSSS"};
  TrainFn fn = std::ref(fake);
  EXPECT_EQ(run_sweep(plan, fn), 2);  // one exception, one non-zero exit; the sweep went on
  ASSERT_EQ(fake.calls.size(), 3u);
  EXPECT_EQ(fake.calls[0], (std::vector<std::string>{"--config", plan.base_config, "--set", "train.steps=40", "--set",
                                                     "model.layer_pattern=LLLS", "--set",
                                                     "train.run_dir=" + plan.runs[0].run_dir, "--resume", "auto"}));
  EXPECT_TRUE(run_finished(plan.runs[0]));
  EXPECT_FALSE(run_finished(plan.runs[1]));

  fake.fail.clear();
  fake.calls.clear();
  EXPECT_EQ(run_sweep(plan, fn), 0);
  ASSERT_EQ(fake.calls.size(), 2u);  // the finished one is skipped
  fake.calls.clear();
  EXPECT_EQ(run_sweep(plan, fn), 0);
  EXPECT_TRUE(fake.calls.empty());
}

// A fake trainer that also saves the resolved config as the trainer does (vocab_size filled
// in from the "data").
struct ConfigSavingTrain {
  std::vector<std::string> runs;  // run folders trained, in order
  int operator()(const std::vector<std::string>& args) {
    std::vector<std::string> sets;
    for (size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == "--set") sets.push_back(args[i + 1]);
    Config cfg = load_config(args.at(1), sets);
    if (cfg.model.vocab_size == 0) cfg.model.vocab_size = 96;
    fs::create_directories(cfg.train.run_dir);
    std::ofstream(fs::path(cfg.train.run_dir) / "config.yaml") << config_to_yaml(cfg);
    std::ofstream(fs::path(cfg.train.run_dir) / "final.json") << "{\"step\": 40}\n";
    runs.push_back(cfg.train.run_dir);
    return 0;
  }
};

std::string run_error(const SweepPlan& plan, const TrainFn& fn) {
  try {
    run_sweep(plan, fn, OnChange::refuse);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Sweep, ChangedSettingsRefuseOrRerunOnlyTheAffectedRuns) {
  TempDir t("changed");
  const std::string file = t.sweep("c", "grid:\n  model.layer_pattern: [LLLS, SSSS]\nset: [train.steps=40, model.vocab_size=0]\n");
  SweepPlan plan = load_sweep(file);
  ConfigSavingTrain fake;
  EXPECT_EQ(run_sweep(plan, std::ref(fake)), 0);
  ASSERT_EQ(fake.runs.size(), 2u);
  for (const auto& r : plan.runs) EXPECT_EQ(run_config_changes(plan, r), std::vector<std::string>{}) << r.name;  // vocab_size: resolved

  // Run 0 was trained with other settings (as by an earlier version of the sweep file).
  const fs::path saved = fs::path(plan.runs[0].run_dir) / "config.yaml";
  std::string yaml = slurp(saved);
  const std::regex steps("\n  steps: 40 ");
  ASSERT_TRUE(std::regex_search(yaml, steps));
  yaml = std::regex_replace(yaml, steps, "\n  steps: 30 ");
  std::ofstream(saved) << yaml;
  EXPECT_EQ(run_config_changes(plan, plan.runs[0]), std::vector<std::string>{"train.steps: run 30, sweep 40"});
  EXPECT_TRUE(run_config_changes(plan, plan.runs[1]).empty());

  fake.runs.clear();
  const std::string err = run_error(plan, std::ref(fake));
  EXPECT_NE(err.find(plan.runs[0].run_dir + " (finished):\n    train.steps: run 30, sweep 40"), std::string::npos) << err;
  EXPECT_EQ(err.find(plan.runs[1].run_dir), std::string::npos) << err;
  EXPECT_NE(err.find("--on-change rerun"), std::string::npos) << err;
  EXPECT_TRUE(fake.runs.empty());  // refused before running anything

  EXPECT_EQ(run_sweep(plan, std::ref(fake), OnChange::rerun), 0);
  EXPECT_EQ(fake.runs, std::vector<std::string>{plan.runs[0].run_dir});  // only the affected run
  EXPECT_EQ(slurp(fs::path(plan.runs[0].run_dir + ".stale-1") / "config.yaml"), yaml);  // the old run is kept
  EXPECT_TRUE(run_config_changes(plan, plan.runs[0]).empty());

  // The sweep file itself changes: every run is affected.
  plan = load_sweep(t.sweep("c", "grid:\n  model.layer_pattern: [LLLS, SSSS]\nset: [train.steps=50, model.vocab_size=0]\n"));
  const std::string all = run_error(plan, std::ref(fake));
  for (const auto& r : plan.runs) EXPECT_NE(all.find(r.run_dir + " (finished):\n    train.steps: run 40, sweep 50"), std::string::npos) << all;
  fake.runs.clear();
  EXPECT_EQ(run_sweep(plan, std::ref(fake), OnChange::rerun), 0);
  EXPECT_EQ(fake.runs.size(), 2u);
  EXPECT_TRUE(fs::exists(plan.runs[0].run_dir + ".stale-2"));
  EXPECT_THROW(parse_on_change("sometimes"), Error);
}

TEST(Sweep, ResultsTableAndLossPlot) {
  TempDir t("results");
  SweepPlan plan = load_sweep(t.sweep("res", "grid:\n  optim.lr: [1e-3, 2e-3]\n  model.layer_pattern: [LLLS, SSSS]\n"));
  FakeTrain fake;
  fake.fail = {"optim.lr=2e-3,model.layer_pattern=SSSS"};  // stays unfinished: "-"
  EXPECT_EQ(run_sweep(plan, std::ref(fake)), 1);
  const std::string csv = slurp(fs::path(plan.out_dir) / "results.csv");
  EXPECT_EQ(csv,
            "run,optim.lr,model.layer_pattern,step,loss,val_loss,val_ppl,tokens_per_s,metric\n"
            "\"optim.lr=1e-3,model.layer_pattern=LLLS\",1e-3,LLLS,40,1.5,nan,9.5,1234,0\n"
            "\"optim.lr=1e-3,model.layer_pattern=SSSS\",1e-3,SSSS,40,1.5,4,9.5,1234,0\n"
            "\"optim.lr=2e-3,model.layer_pattern=LLLS\",2e-3,LLLS,40,1.5,5,9.5,1234,0\n"
            "\"optim.lr=2e-3,model.layer_pattern=SSSS\",2e-3,SSSS,-,-,-,-,-,-\n");
  const std::string md = slurp(fs::path(plan.out_dir) / "results.md");
  EXPECT_NE(md.find("| run | optim.lr | model.layer_pattern | step | loss | val_loss | val_ppl | tokens_per_s | metric |\n"
                    "|---|---|---|---|---|---|---|---|---|\n"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| optim.lr=1e-3,model.layer_pattern=SSSS | 1e-3 | SSSS | 40 | 1.5 | 4 | 9.5 | 1234 | 0 |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| optim.lr=2e-3,model.layer_pattern=SSSS | 2e-3 | SSSS | - | - | - | - | - | - |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("Lowest val_loss: **optim.lr=1e-3,model.layer_pattern=SSSS** (4)"), std::string::npos) << md;

  const std::string svg = slurp(fs::path(plan.out_dir) / "loss.svg");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  std::regex poly("<polyline [^>]*points=\"([^\"]*)\"");
  int n = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), poly); it != std::sregex_iterator(); ++it, ++n) {
    std::istringstream pts((*it)[1].str());
    int count = 0;
    for (std::string p; pts >> p;) ++count;
    EXPECT_EQ(count, 4) << "steps 10, 20, 30 (re-logged), 40 (re-logged)";
  }
  EXPECT_EQ(n, 3);  // one per run with data
  for (const auto& r : plan.runs) EXPECT_NE(svg.find(r.name), std::string::npos) << "legend: " << r.name;
  EXPECT_NE(svg.find(plan.runs[3].name + " (no data)"), std::string::npos);
}

// plot: {x, y}: the final y against the grid key x, one line per value of the other varying
// key (Zoology's accuracy-vs-pairs figure); a run whose y is not finite leaves a gap.
TEST(Sweep, MetricPlotOneLinePerOtherKey) {
  TempDir t("plot");
  SweepPlan plan = load_sweep(t.sweep("p", "grid:\n  optim.warmup: [10, 20, 30]\n  model.layer_pattern: [LLLS, SSSS]\n"
                                           "plot: {x: optim.warmup, y: val_loss}\n"));
  EXPECT_EQ(plan.plot_x, "optim.warmup");
  EXPECT_EQ(plan.plot_y, "val_loss");
  FakeTrain fake;  // val_loss: nan for the first run, 2 + k for the k-th
  EXPECT_EQ(run_sweep(plan, std::ref(fake)), 0);
  const std::string svg = slurp(fs::path(plan.out_dir) / "val_loss.svg");
  std::regex poly("<polyline [^>]*points=\"([^\"]*)\"");
  std::vector<int> counts;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), poly); it != std::sregex_iterator(); ++it) {
    std::istringstream pts((*it)[1].str());
    int count = 0;
    for (std::string p; pts >> p;) ++count;
    counts.push_back(count);
  }
  EXPECT_EQ(counts, (std::vector<int>{2, 3}));  // LLLS: warmup 20, 30 (10 is nan); SSSS: all three
  EXPECT_NE(svg.find("layer_pattern=LLLS"), std::string::npos);
  EXPECT_NE(svg.find("layer_pattern=SSSS"), std::string::npos);
  EXPECT_NE(svg.find("val_loss vs optim.warmup"), std::string::npos);

  std::string e = error_of(t.sweep("px", "grid: {optim.warmup: [10, 20]}\nplot: {x: optim.lr, y: val_loss}\n"));
  EXPECT_NE(e.find("plot.x 'optim.lr' is not a grid key"), std::string::npos) << e;
  e = error_of(t.sweep("pnum", "grid: {model.layer_pattern: [LLLS, SSSS]}\nplot: {x: model.layer_pattern, y: loss}\n"));
  EXPECT_NE(e.find("has the value 'LLLS', not a number"), std::string::npos) << e;
  e = error_of(t.sweep("pkeys", "grid: {optim.warmup: [10]}\nplot: {x: optim.warmup}\n"));
  EXPECT_NE(e.find("plot needs {x:"), std::string::npos) << e;
}

TEST(Sweep, CommandsAndSlurmScriptRunWithExactArguments) {
  TempDir t("emit");
  SweepPlan plan = load_sweep(t.sweep("emit", "grid:\n  train.sample_prompt: [\"it's a test\", plain]\n"));
  // a fake binary: appends each argument on its own line to args.txt
  const fs::path fake = t.root / "fake skein";
  std::ofstream(fake) << "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> '" << (t.root / "args.txt").string()
                      << "'; done\n";
  fs::permissions(fake, fs::perms::owner_all);
  const auto cmds = sweep_commands(plan, fake.string());
  ASSERT_EQ(cmds.size(), 2u);
  EXPECT_EQ(cmds[1], std::string("'") + fake.string() + "' train --config " + plan.base_config +
                         " --set train.sample_prompt=plain --set train.run_dir=" + plan.runs[1].run_dir +
                         " --resume auto");
  auto expected_lines = [&](size_t i) {
    std::string s = "train\n--config\n" + plan.base_config + "\n";
    for (const auto& o : plan.runs[i].overrides) s += "--set\n" + o + "\n";
    return s + "--resume\nauto\n";
  };
  ASSERT_EQ(std::system(cmds[0].c_str()), 0) << cmds[0];
  EXPECT_EQ(slurp(t.root / "args.txt"), expected_lines(0));  // the quote and space survived

  const std::string script = slurm_array_script(plan, fake.string());
  EXPECT_EQ(script.rfind("#!/bin/bash\n", 0), 0u);
  EXPECT_NE(script.find("#SBATCH --array=0-1\n"), std::string::npos) << script;
  EXPECT_NE(script.find("commands=(\n"), std::string::npos) << script;
  EXPECT_NE(script.find("${commands[$SLURM_ARRAY_TASK_ID]}"), std::string::npos) << script;
  std::ofstream(t.root / "job.sh") << script;
  for (size_t i = 0; i < 2; ++i) {
    fs::remove(t.root / "args.txt");
    const std::string run = "SLURM_ARRAY_TASK_ID=" + std::to_string(i) + " bash '" + (t.root / "job.sh").string() + "'";
    ASSERT_EQ(std::system(run.c_str()), 0) << script;
    EXPECT_EQ(slurp(t.root / "args.txt"), expected_lines(i)) << "array task " << i;
  }
}

}  // namespace
}  // namespace skein
