// plot.cpp — svg_line_plot: a plain SVG 1.1 document (title, axes, grid, tick labels, axis
// labels, legend on the right), one colour per series (tab10, then dashed repeats).
#include "launch/plot.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include "core/error.h"

namespace skein {
namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr int kPaletteSize = 10;
constexpr const char* kDashes[] = {"", "6,3", "2,2", "8,3,2,3"};
constexpr double kCharWidth = 6.6;  // approximate advance of a 12px sans-serif character
constexpr size_t kMaxLegendChars = 64;

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

// A tick label with as many decimals as the tick step needs.
std::string tick_label(double v, double step, double max_abs) {
  if (std::fabs(v) < step * 1e-9) v = 0;  // no "-0"
  if (max_abs >= 1e7 || step < 1e-4) return fmt("%.3g", v);
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

struct Axis {
  std::vector<double> ticks;
  double lo = 0, hi = 1;
  explicit Axis(double a, double b) : ticks(nice_ticks(a, b)), lo(ticks.front()), hi(ticks.back()) {}
  double step() const { return ticks.size() > 1 ? ticks[1] - ticks[0] : 1; }
  double max_abs() const { return std::max(std::fabs(lo), std::fabs(hi)); }
};

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  SKEIN_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "nice_ticks: bad range [", lo, ", ", hi, "]");
  SKEIN_CHECK(target >= 2, "nice_ticks: target ", target, " < 2");
  if (hi - lo <= std::max(std::fabs(lo), std::fabs(hi)) * 1e-12) {  // degenerate: widen
    const double w = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= w;
    hi += w;
  }
  const double raw = (hi - lo) / (target - 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  const double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  const double first = std::floor(lo / step), last = std::ceil(hi / step);
  std::vector<double> t;
  for (double k = first; k <= last + 0.5; k += 1) t.push_back(k * step);  // multiples: no drift
  return t;
}

std::string svg_line_plot(const std::vector<PlotSeries>& series, const PlotOptions& opt) {
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  size_t longest = 0;
  for (const auto& s : series) {
    SKEIN_CHECK(s.x.size() == s.y.size(), "svg_line_plot: series '", s.label, "' has ", s.x.size(), " x and ",
                s.y.size(), " y values");
    longest = std::max(longest, std::min(s.label.size(), kMaxLegendChars));
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]);
      ymax = std::max(ymax, s.y[i]);
    }
  }
  const bool empty = !(xmin <= xmax);
  if (empty) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  const Axis ax(xmin, xmax), ay(ymin, ymax);

  const double ml = 72, mr = 16, mt = 40, mb = 52;
  const double pw = opt.width - ml - mr, ph = opt.height - mt - mb;
  const double legend_w = series.empty() ? 0 : 44 + kCharWidth * static_cast<double>(longest);
  const double W = opt.width + legend_w, H = std::max<double>(opt.height, mt + 20 * series.size() + 16);
  auto px = [&](double x) { return ml + (x - ax.lo) / (ax.hi - ax.lo) * pw; };
  auto py = [&](double y) { return mt + ph - (y - ay.lo) / (ay.hi - ay.lo) * ph; };

  std::string o;
  o += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", W) + "\" height=\"" + fmt("%.0f", H) +
       "\" viewBox=\"0 0 " + fmt("%.0f", W) + " " + fmt("%.0f", H) +
       "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n";
  o += "<rect x=\"0\" y=\"0\" width=\"" + fmt("%.0f", W) + "\" height=\"" + fmt("%.0f", H) + "\" fill=\"white\"/>\n";
  o += "<text x=\"" + fmt("%.1f", ml + pw / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" +
       xml_escape(opt.title) + "</text>\n";
  // grid and tick labels
  for (double t : ax.ticks) {
    const std::string X = fmt("%.2f", px(t));
    o += "<line x1=\"" + X + "\" y1=\"" + fmt("%.2f", mt) + "\" x2=\"" + X + "\" y2=\"" + fmt("%.2f", mt + ph) +
         "\" stroke=\"#e4e4e4\"/>\n";
    o += "<text x=\"" + X + "\" y=\"" + fmt("%.2f", mt + ph + 17) + "\" text-anchor=\"middle\">" +
         tick_label(t, ax.step(), ax.max_abs()) + "</text>\n";
  }
  for (double t : ay.ticks) {
    const std::string Y = fmt("%.2f", py(t));
    o += "<line x1=\"" + fmt("%.2f", ml) + "\" y1=\"" + Y + "\" x2=\"" + fmt("%.2f", ml + pw) + "\" y2=\"" + Y +
         "\" stroke=\"#e4e4e4\"/>\n";
    o += "<text x=\"" + fmt("%.2f", ml - 6) + "\" y=\"" + Y + "\" dy=\"4\" text-anchor=\"end\">" +
         tick_label(t, ay.step(), ay.max_abs()) + "</text>\n";
  }
  o += "<rect x=\"" + fmt("%.2f", ml) + "\" y=\"" + fmt("%.2f", mt) + "\" width=\"" + fmt("%.2f", pw) +
       "\" height=\"" + fmt("%.2f", ph) + "\" fill=\"none\" stroke=\"black\"/>\n";
  o += "<text x=\"" + fmt("%.1f", ml + pw / 2) + "\" y=\"" + fmt("%.1f", mt + ph + 40) +
       "\" text-anchor=\"middle\">" + xml_escape(opt.x_label) + "</text>\n";
  o += "<text transform=\"translate(18," + fmt("%.1f", mt + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
       xml_escape(opt.y_label) + "</text>\n";
  if (empty) o += "<text x=\"" + fmt("%.1f", ml + pw / 2) + "\" y=\"" + fmt("%.1f", mt + ph / 2) +
                  "\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n";

  // the lines: one polyline per run of finite points
  for (size_t si = 0; si < series.size(); ++si) {
    const auto& s = series[si];
    std::string style = std::string("fill=\"none\" stroke=\"") + kPalette[si % kPaletteSize] +
                        "\" stroke-width=\"1.6\" stroke-linejoin=\"round\"";
    const char* dash = kDashes[(si / kPaletteSize) % 4];
    if (*dash) style += std::string(" stroke-dasharray=\"") + dash + "\"";
    const std::string title = "<title>" + xml_escape(s.label) + "</title>";
    std::vector<std::pair<double, double>> run;
    auto emit = [&] {
      if (run.size() == 1) {
        o += "<circle cx=\"" + fmt("%.2f", run[0].first) + "\" cy=\"" + fmt("%.2f", run[0].second) +
             "\" r=\"2.5\" fill=\"" + kPalette[si % kPaletteSize] + "\">" + title + "</circle>\n";
      } else if (run.size() > 1) {
        o += "<polyline " + style + " points=\"";
        for (size_t i = 0; i < run.size(); ++i) {
          if (i) o += ' ';
          o += fmt("%.2f", run[i].first);
          o += ',';
          o += fmt("%.2f", run[i].second);
        }
        o += "\">" + title + "</polyline>\n";
      }
      run.clear();
    };
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) run.emplace_back(px(s.x[i]), py(s.y[i]));
      else emit();
    }
    emit();
  }

  // legend
  if (!series.empty()) {
    const double lx = opt.width + 4, ly = mt;
    o += "<rect x=\"" + fmt("%.1f", lx) + "\" y=\"" + fmt("%.1f", ly) + "\" width=\"" + fmt("%.1f", legend_w - 10) +
         "\" height=\"" + fmt("%.1f", 20.0 * series.size() + 8) + "\" fill=\"white\" stroke=\"#bbb\"/>\n";
    for (size_t si = 0; si < series.size(); ++si) {
      const double y = ly + 16 + 20.0 * si;
      std::string label = series[si].label;
      if (label.size() > kMaxLegendChars) label = label.substr(0, kMaxLegendChars - 3) + "...";
      const char* dash = kDashes[(si / kPaletteSize) % 4];
      o += "<line x1=\"" + fmt("%.1f", lx + 8) + "\" y1=\"" + fmt("%.1f", y - 4) + "\" x2=\"" + fmt("%.1f", lx + 30) +
           "\" y2=\"" + fmt("%.1f", y - 4) + "\" stroke=\"" + kPalette[si % kPaletteSize] + "\" stroke-width=\"2.5\"" +
           (*dash ? std::string(" stroke-dasharray=\"") + dash + "\"" : std::string()) + "/>\n";
      o += "<text x=\"" + fmt("%.1f", lx + 36) + "\" y=\"" + fmt("%.1f", y) + "\">" + xml_escape(label) + "</text>\n";
    }
  }
  o += "</svg>\n";
  return o;
}

}  // namespace skein
