// icl_eval.cpp — IclCurves (see icl_eval.h).
#include "launch/icl_eval.h"
#include <nlohmann/json.hpp>
#include "data/synthetic.h"
#include "launch/plot.h"

namespace skein {

void IclCurves::add(const Tensor& predictions, const Tensor& inputs, const Tensor& targets) {
  auto accumulate = [&](const std::string& name, const Tensor& pred) {
    std::vector<double> e = icl_regression_mse_per_point(pred, targets);
    std::vector<double>& acc = per_point[name];
    if (acc.empty()) acc.assign(e.size(), 0.0);
    SKEIN_CHECK(acc.size() == e.size(), "icl curves: batches with ", acc.size(), " and ", e.size(), " points");
    for (size_t i = 0; i < e.size(); ++i) acc[i] += e[i];
  };
  accumulate("model", predictions);
  for (IclBaseline b : {IclBaseline::least_squares, IclBaseline::nearest_3, IclBaseline::averaging})
    accumulate(icl_baseline_name(b), icl_baseline_predictions(inputs, targets, b));
  ++batches;
}

void IclCurves::finish() {
  for (auto& [name, v] : per_point)
    for (double& x : v) x /= static_cast<double>(batches);
}

double IclCurves::mean(const std::string& name) const {
  const std::vector<double>& v = per_point.at(name);
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

std::string icl_curves_json(const IclCurves& c) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, v] : c.per_point) j[name] = v;
  return j.dump();
}

std::string icl_curves_svg(const IclCurves& c, const std::string& title) {
  std::vector<PlotSeries> series;
  for (const char* name : {"model", "least_squares", "nearest_3", "averaging"}) {
    auto it = c.per_point.find(name);
    if (it == c.per_point.end()) continue;
    PlotSeries s{name, {}, it->second};
    for (size_t k = 0; k < it->second.size(); ++k) s.x.push_back(static_cast<double>(k));
    series.push_back(s);
  }
  PlotOptions o;
  o.title = title;
  o.x_label = "in-context examples k";
  o.y_label = "squared error at point k";
  return svg_line_plot(series, o);
}

}  // namespace skein
