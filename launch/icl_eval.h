// icl_eval.h — the in-context learning curve of an in-context regression evaluation: the
// model's squared error at each point index k (averaged over the evaluated sequences) beside
// the least-squares, 3-nearest-neighbour and averaging estimators on the SAME sequences
// (data/synthetic.h), the figure of Garg et al. (2022, Figure 2); as JSON and as an SVG plot.
#pragma once
#include <map>
#include <string>
#include <vector>
#include "core/tensor.h"

namespace skein {

struct IclCurves {
  // "model", "least_squares", "nearest_3", "averaging" -> mean squared error per point index.
  std::map<std::string, std::vector<double>> per_point;
  int64_t batches = 0;

  // Adds one batch: predictions [B, n] of the model, inputs [B, 2n, dim + 1], targets [B, n].
  void add(const Tensor& predictions, const Tensor& inputs, const Tensor& targets);
  // The means over the batches added (call once, after the last add).
  void finish();
  bool empty() const { return batches == 0; }
  // Mean over the points of one curve.
  double mean(const std::string& name) const;
};

// {"model": [...], "least_squares": [...], ...} (a JSON object, one line).
std::string icl_curves_json(const IclCurves& c);
// An SVG plot of the curves (squared error vs number of in-context examples).
std::string icl_curves_svg(const IclCurves& c, const std::string& title);

}  // namespace skein
