// sweep_plot.cpp — a sweep's `plot: {x: <grid key>, y: <final.json field>}` (see sweep.h): each
// run's final value of y against its value of x, one line per combination of the other keys
// that vary between the runs, written to <out>/<y>.svg. Zoology's figure (MQAR accuracy vs the
// number of key-value pairs, one line per mixer) is `plot: {x: data.mqar_num_kv_pairs,
// y: mqar_accuracy}`. A run without final.json or without the field leaves a gap in its line.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include "core/error.h"
#include "launch/plot.h"
#include "launch/sweep.h"

namespace skein {

namespace fs = std::filesystem;

void write_sweep_plot(const SweepPlan& plan) {
  SKEIN_CHECK(!plan.plot_x.empty() && !plan.plot_y.empty(), "sweep: write_sweep_plot needs plot.x and plot.y");
  auto [keys, values] = swept_keys(plan);
  // one series per combination of the other varying keys, labelled "key=value, ..." with each
  // key's last dotted part (linear_variant=decay)
  std::map<std::string, size_t> series_of;
  std::vector<PlotSeries> series;
  std::vector<std::vector<std::pair<double, double>>> points;
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    SKEIN_CHECK(values[i].count(plan.plot_x), "sweep: run '", plan.runs[i].name, "' has no value of plot.x '",
                plan.plot_x, "'");
    std::string label;
    for (const std::string& k : keys) {
      if (k == plan.plot_x) continue;
      const std::string shortk = k.substr(k.rfind('.') == std::string::npos ? 0 : k.rfind('.') + 1);
      label += (label.empty() ? "" : ", ") + shortk + "=" + (values[i].count(k) ? values[i][k] : "-");
    }
    if (label.empty()) label = plan.plot_y;
    auto [it, added] = series_of.emplace(label, series.size());
    if (added) {
      series.push_back({label, {}, {}});
      points.emplace_back();
    }
    double y = NAN;
    if (auto final = read_run_final(plan.runs[i]))
      for (const auto& [k, v] : *final)
        if (k == plan.plot_y) y = v;
    points[it->second].emplace_back(std::strtod(values[i][plan.plot_x].c_str(), nullptr), y);
  }
  for (size_t s = 0; s < series.size(); ++s) {
    std::stable_sort(points[s].begin(), points[s].end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [x, y] : points[s]) {
      series[s].x.push_back(x);
      series[s].y.push_back(y);
    }
    if (std::none_of(series[s].y.begin(), series[s].y.end(), [](double v) { return std::isfinite(v); }))
      series[s].label += " (no data)";
  }
  const fs::path file = fs::path(plan.out_dir) / (plan.plot_y + ".svg");
  std::ofstream svg(file);
  svg << svg_line_plot(series, {plan.plot_y + " vs " + plan.plot_x + ": " + plan.out_dir, plan.plot_x, plan.plot_y});
  SKEIN_CHECK(svg.good(), "sweep: writing '", file.string(), "' failed");
}

}  // namespace skein
