// plot.h — a self-contained SVG line plot (axes, 1-2-5 ticks with labels, grid, legend), for
// the loss curves of a sweep; no plotting library, the file opens in any browser.
#pragma once
#include <string>
#include <vector>

namespace skein {

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;  // same length; non-finite points break the line
};

struct PlotOptions {
  std::string title, x_label, y_label;
  int width = 720;   // plot area plus axes; the legend is added on the right
  int height = 440;
};

// The whole SVG document: one <polyline> per run of finite points of each series.
std::string svg_line_plot(const std::vector<PlotSeries>& series, const PlotOptions& opt);
// "Nice" tick positions (steps of 1, 2 or 5 x 10^k), about `target` of them, with the first
// <= lo and the last >= hi; a degenerate range (lo == hi) is widened around lo.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

}  // namespace skein
