#pragma once
// Pictures of results, drawn on an RGB tv::data::Image and written as PNG (include tinyvid/data/frames.hpp to
// save): line charts (training curves) with round ticks and margins measured from their labels, grouped bar
// charts with error bars (results over seeds), and a confusion matrix. A 5x7 pixel font is built in (digits, lowercase letters, some punctuation; capitals are
// drawn as lowercase), so no font library is needed.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "tinyvid/data/image.hpp"

namespace tv::viz {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

namespace detail {

// One glyph: 7 rows of 5 columns, '#' = ink.
struct Glyph {
  char c;
  std::array<const char*, 7> rows;
};

inline const std::vector<Glyph>& font() {
  static const std::vector<Glyph> f = {
      {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
      {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
      {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
      {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},
      {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
      {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
      {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
      {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
      {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
      {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
      {'a', {".....", ".....", ".###.", "....#", ".####", "#...#", ".####"}},
      {'b', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."}},
      {'c', {".....", ".....", ".###.", "#....", "#....", "#...#", ".###."}},
      {'d', {"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"}},
      {'e', {".....", ".....", ".###.", "#...#", "#####", "#....", ".###."}},
      {'f', {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."}},
      {'g', {".....", ".####", "#...#", "#...#", ".####", "....#", ".###."}},
      {'h', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
      {'i', {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."}},
      {'j', {"...#.", ".....", "..##.", "...#.", "...#.", "#..#.", ".##.."}},
      {'k', {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."}},
      {'l', {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
      {'m', {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"}},
      {'n', {".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
      {'o', {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."}},
      {'p', {".....", ".....", "####.", "#...#", "####.", "#....", "#...."}},
      {'q', {".....", ".....", ".##.#", "#..##", ".####", "....#", "....#"}},
      {'r', {".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."}},
      {'s', {".....", ".....", ".###.", "#....", ".###.", "....#", "####."}},
      {'t', {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."}},
      {'u', {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"}},
      {'v', {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
      {'w', {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."}},
      {'x', {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"}},
      {'y', {".....", ".....", "#...#", "#...#", ".####", "....#", ".###."}},
      {'z', {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"}},
      {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},
      {',', {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."}},
      {':', {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}},
      {'-', {".....", ".....", ".....", "#####", ".....", ".....", "....."}},
      {'+', {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}},
      {'_', {".....", ".....", ".....", ".....", ".....", ".....", "#####"}},
      {'%', {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"}},
      {'(', {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}},
      {')', {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}},
      {'/', {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."}},
      {'=', {".....", ".....", "#####", ".....", "#####", ".....", "....."}},
      {'[', {".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###."}},
      {']', {".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###."}},
      {'?', {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."}},
  };
  return f;
}

inline const Glyph* find_glyph(char c) {
  if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  for (const Glyph& g : font())
    if (g.c == c) return &g;
  return c == ' ' ? nullptr : find_glyph('?');
}

}  // namespace detail

class Canvas {
 public:
  Canvas(int64_t width, int64_t height, Rgb background = {255, 255, 255}) : img_(height, width, 3) {
    fill_rect(0, 0, width, height, background);
  }
  int64_t width() const { return img_.width; }
  int64_t height() const { return img_.height; }
  const data::Image& image() const { return img_; }

  void pixel(int64_t x, int64_t y, Rgb c) {
    if (x < 0 || y < 0 || x >= img_.width || y >= img_.height) return;
    uint8_t* p = img_.row(y) + x * 3;
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  void fill_rect(int64_t x0, int64_t y0, int64_t w, int64_t h, Rgb c) {
    for (int64_t y = y0; y < y0 + h; ++y)
      for (int64_t x = x0; x < x0 + w; ++x) pixel(x, y, c);
  }
  // A line `thickness` pixels wide (square pen).
  void line(double x0, double y0, double x1, double y1, Rgb c, int thickness = 1) {
    const double len = std::max(std::abs(x1 - x0), std::abs(y1 - y0));
    const auto steps = static_cast<int64_t>(std::ceil(len)) + 1;
    for (int64_t s = 0; s <= steps; ++s) {
      const double t = steps ? static_cast<double>(s) / static_cast<double>(steps) : 0.0;
      const auto x = static_cast<int64_t>(std::lround(x0 + t * (x1 - x0))) - thickness / 2;
      const auto y = static_cast<int64_t>(std::lround(y0 + t * (y1 - y0))) - thickness / 2;
      fill_rect(x, y, thickness, thickness, c);
    }
  }
  // Text with its top-left corner at (x, y); each font pixel becomes scale x scale. Returns the width drawn.
  int64_t text(int64_t x, int64_t y, const std::string& s, Rgb c = {0, 0, 0}, int scale = 1) {
    int64_t cx = x;
    for (char ch : s) {
      if (const detail::Glyph* g = detail::find_glyph(ch))
        for (int r = 0; r < 7; ++r)
          for (int k = 0; k < 5; ++k)
            if (g->rows[static_cast<size_t>(r)][k] == '#') fill_rect(cx + k * scale, y + r * scale, scale, scale, c);
      cx += 6 * scale;
    }
    return cx - x;
  }
  static int64_t text_width(const std::string& s, int scale = 1) { return static_cast<int64_t>(s.size()) * 6 * scale; }

  // A template so that this header needs only the image type: write_png (data/frames.hpp, tinyvid::video) is
  // found where a picture is saved, while layout and drawing build and are tested without libpng.
  template <class Image = data::Image>
  void save_png(const std::string& path) const {
    write_png(path, static_cast<const Image&>(img_));  // found by argument-dependent lookup in tv::data
  }

 private:
  data::Image img_;
};

// An axis from lo to hi with a tick at every multiple of `step` (1, 2 or 5 times a power of ten) between them.
struct Axis {
  double lo = 0, hi = 1, step = 0.5;
  std::vector<double> ticks() const {
    std::vector<double> t;
    const auto first = static_cast<int64_t>(std::ceil(lo / step - 1e-9)), last = static_cast<int64_t>(std::floor(hi / step + 1e-9));
    for (int64_t k = first; k <= last; ++k) t.push_back(static_cast<double>(k) * step);  // k * step: 0 is 0, never -0
    return t;
  }
};

// The round axis around [lo, hi] with at most max_intervals steps, the smallest such step: [3, 1130] gives
// 0, 200, ..., 1200; [0.0213, 0.0789] gives 0.02, 0.03, ..., 0.08. A single value gets an axis around it.
inline Axis nice_axis(double lo, double hi, int max_intervals = 6) {
  if (!(lo <= hi) || !std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (hi == lo) {
    const double half = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= half, hi += half;
  }
  const double base = std::pow(10.0, std::floor(std::log10((hi - lo) / max_intervals)));
  for (int k = 0;; ++k) {  // 1, 2, 5, 10, 20, 50, ... times base, until the ticks covering [lo, hi] are few enough
    const double s = base * std::array<double, 3>{1, 2, 5}[static_cast<size_t>(k % 3)] * std::pow(10.0, k / 3);
    const double a = std::floor(lo / s + 1e-9) * s, b = std::ceil(hi / s - 1e-9) * s;
    if ((b - a) / s <= max_intervals + 1e-9) return {a, b, s};
  }
}

// A tick label with just the digits the step needs: 0, 500, 1000 or 0.2, 0.4; percent: 0.25 -> 25%.
// Values from 1e9 up, or steps below 1e-4, are written as 1.5e+09 or 2e-05.
inline std::string format_tick(double v, double step, bool percent = false) {
  if (percent) v *= 100, step *= 100;
  char buf[48];
  const int step_digit = static_cast<int>(std::floor(std::log10(step) + 1e-9));  // 10^step_digit: the last digit needed
  if (v == 0) {
    std::snprintf(buf, sizeof(buf), "0");
  } else if (std::abs(v) >= 1e9 || step < 1e-4) {
    const int lead = static_cast<int>(std::floor(std::log10(std::abs(v)) + 1e-9));
    std::snprintf(buf, sizeof(buf), "%.*e", std::max(0, lead - step_digit), v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.*f", std::max(0, -step_digit), v);
  }
  return std::string(buf) + (percent ? "%" : "");
}

struct Series {
  std::string name;
  std::vector<double> x, y;
  Rgb color{31, 119, 180};
};

struct ChartOptions {
  // A fixed y axis, e.g. {0, 1} for an accuracy, so charts of runs compare at a glance; values outside it are
  // drawn at its edge. NaN (the default): the round axis around the data.
  std::array<double, 2> y_range{std::nan(""), std::nan("")};
  bool percent = false;  // y tick labels in percent of 1 (0.4 -> 40%)
};

// A chart of one or more series sharing axes, drawn into the given box of the canvas; nothing is drawn
// outside the box (margins are measured from the labels in the built-in font).
inline void line_chart(Canvas& cv, int64_t x0, int64_t y0, int64_t w, int64_t h, const std::vector<Series>& series,
                       const std::string& title, const std::string& x_label, const ChartOptions& o = {}) {
  double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
  for (const Series& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        xmin = std::min(xmin, s.x[i]), xmax = std::max(xmax, s.x[i]);
        ymin = std::min(ymin, s.y[i]), ymax = std::max(ymax, s.y[i]);
      }
  if (xmin > xmax) xmin = 0, xmax = 1, ymin = 0, ymax = 1;  // nothing to draw: an empty chart
  const bool fixed = std::isfinite(o.y_range[0]) && std::isfinite(o.y_range[1]) && o.y_range[0] < o.y_range[1];
  const Axis xa = nice_axis(xmin, xmax, 8);
  Axis ya = nice_axis(fixed ? o.y_range[0] : ymin, fixed ? o.y_range[1] : ymax, 5);
  if (fixed) ya.lo = o.y_range[0], ya.hi = o.y_range[1];  // exactly the range asked for, round ticks inside it

  // Labels first: their widths set the margins, so none is cut at the edge of the box.
  std::vector<std::pair<double, std::string>> yt, xt;
  int64_t y_label_w = 0;
  for (double v : ya.ticks()) {
    yt.emplace_back(v, format_tick(v, ya.step, o.percent));
    y_label_w = std::max(y_label_w, Canvas::text_width(yt.back().second));
  }
  for (double v : xa.ticks()) xt.emplace_back(v, format_tick(v, xa.step));
  const int64_t last_x_half = xt.empty() ? 0 : Canvas::text_width(xt.back().second) / 2;
  // At least 56 pixels, so stacked charts (loss over accuracy) line up unless a label needs more.
  const int64_t left = x0 + std::max<int64_t>(56, 16 + y_label_w), right = x0 + w - std::max<int64_t>(14, last_x_half + 6);
  const int64_t legend_w = [&] {
    int64_t lw = 0;
    for (const Series& s : series) lw += Canvas::text_width(s.name) + 22;
    return lw;
  }();
  // The title in large type when it fits the box, else small, else cut with ".."; the legend goes right of it
  // when both fit on one line, else on a line of its own below it.
  const int64_t room = x0 + w - 8 - left;
  const int title_scale = Canvas::text_width(title, 2) <= room ? 2 : 1;
  std::string title_text = title;
  if (Canvas::text_width(title_text, title_scale) > room)
    title_text = title.substr(0, static_cast<size_t>(std::max<int64_t>(0, room / 6 - 2))) + "..";
  const bool legend_below = Canvas::text_width(title_text, title_scale) + 16 + legend_w > room;
  const int64_t top = y0 + (legend_below ? 44 : 30), bottom = y0 + h - 34;
  auto px = [&](double x) { return static_cast<double>(left) + (x - xa.lo) / (xa.hi - xa.lo) * static_cast<double>(right - left); };
  auto py = [&](double y) {
    y = std::clamp(y, ya.lo, ya.hi);
    return static_cast<double>(bottom) - (y - ya.lo) / (ya.hi - ya.lo) * static_cast<double>(bottom - top);
  };
  const Rgb axis{60, 60, 60}, grid{228, 228, 228};
  for (const auto& [v, t] : yt) {
    const double y = std::round(py(v));
    cv.line(static_cast<double>(left), y, static_cast<double>(right), y, grid);
    cv.text(left - 6 - Canvas::text_width(t), static_cast<int64_t>(y) - 3, t, axis);
  }
  for (const auto& [v, t] : xt) {
    const double x = std::round(px(v));
    cv.line(x, static_cast<double>(top), x, static_cast<double>(bottom), grid);
    cv.line(x, static_cast<double>(bottom), x, static_cast<double>(bottom + 3), axis);
    cv.text(static_cast<int64_t>(x) - Canvas::text_width(t) / 2, bottom + 7, t, axis);
  }
  cv.line(static_cast<double>(left), static_cast<double>(top), static_cast<double>(left), static_cast<double>(bottom), axis);
  cv.line(static_cast<double>(left), static_cast<double>(bottom), static_cast<double>(right), static_cast<double>(bottom), axis);
  cv.text(left, y0 + 8, title_text, {0, 0, 0}, title_scale);
  cv.text((left + right) / 2 - Canvas::text_width(x_label) / 2, bottom + 20, x_label, axis);
  int64_t legend_x = right;
  const int64_t legend_y = legend_below ? y0 + 28 : y0 + 11;
  for (auto it = series.rbegin(); it != series.rend(); ++it) {  // right-aligned with the plot
    legend_x -= Canvas::text_width(it->name) + 22;
    cv.fill_rect(legend_x, legend_y + 2, 12, 3, it->color);
    cv.text(legend_x + 16, legend_y, it->name, {0, 0, 0});
  }
  for (const Series& s : series) {
    bool have = false;
    double lx = 0, ly = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      const double cx = px(s.x[i]), cy = py(s.y[i]);
      if (have) cv.line(lx, ly, cx, cy, s.color, 2);
      else cv.fill_rect(static_cast<int64_t>(cx) - 1, static_cast<int64_t>(cy) - 1, 3, 3, s.color);
      lx = cx, ly = cy, have = true;
    }
  }
}

// One bar of a grouped bar chart: its group (along x), its series (its colour), its height, and the ends of its
// error bar (e.g. min and max over seeds; NaN: no error bar at that end).
struct Bar {
  std::string group;
  std::string series;
  double value = 0, lo = std::nan(""), hi = std::nan("");
};

namespace detail {

// tab10, the palette of matplotlib (and of line_chart's curves): a series keeps its colour from chart to chart
// when the series come in the same order.
inline Rgb palette(size_t k) {
  static const std::array<Rgb, 10> colors = {{{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                                               {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                                               {188, 189, 34}, {23, 190, 207}}};
  return colors[k % colors.size()];
}

// A group name as one or two lines of at most max_chars characters each: whole when it fits, else broken at a
// space or after '_', '-', '/', '.' (the break that balances the lines best), else cut mid-word; a second line
// still too long ends in "..". Names under neighbouring groups then never overlap.
inline std::vector<std::string> label_lines(const std::string& name, size_t max_chars) {
  max_chars = std::max<size_t>(max_chars, 3);
  if (name.size() <= max_chars) return {name};
  auto trim = [](std::string s) {
    while (!s.empty() && s.back() == ' ') s.pop_back();
    while (!s.empty() && s.front() == ' ') s.erase(0, 1);
    return s;
  };
  std::string first, second;
  size_t best = std::string::npos;  // the longer line of the best break that fits on two lines
  size_t last_fit = 0;              // the last break whose first line fits, when no break fits both lines
  for (size_t i = 1; i < name.size(); ++i) {
    const bool at_space = name[i] == ' ', after_mark = std::string("_-/.").find(name[i - 1]) != std::string::npos;
    if (!at_space && !after_mark) continue;
    const std::string a = trim(name.substr(0, i)), b = trim(name.substr(i));
    if (a.empty() || b.empty() || a.size() > max_chars) continue;
    last_fit = i;
    if (b.size() <= max_chars && (best == std::string::npos || std::max(a.size(), b.size()) < best))
      best = std::max(a.size(), b.size()), first = a, second = b;
  }
  if (best == std::string::npos) {
    // A break well into the name reads better than a cut word; a break near its start would waste the line.
    const size_t cut = last_fit >= max_chars / 2 ? last_fit : max_chars;
    first = trim(name.substr(0, cut)), second = trim(name.substr(cut));
    if (second.size() > max_chars) second = second.substr(0, max_chars - 2) + "..";
  }
  return {first, second};
}

}  // namespace detail

// A grouped bar chart: groups along x in the order they first appear, one bar per series in each group (series
// in first-appearance order, coloured from a fixed palette, named in a legend), an error bar from lo to hi on
// each bar that has one. Bars rise from 0, which the y axis always includes (with a fixed y_range that leaves 0
// out, from the axis' bottom). A group and series given twice: the last bar counts. The canvas is sized from the
// data: each group as wide as its bars and (up to 12 characters a line) its name need.
inline Canvas bar_chart(const std::vector<Bar>& bars, const std::string& title, const std::string& y_label,
                        const ChartOptions& o = {}) {
  std::vector<std::string> groups, series;
  auto index_of = [](std::vector<std::string>& names, const std::string& n) {
    const auto it = std::find(names.begin(), names.end(), n);
    if (it != names.end()) return static_cast<size_t>(it - names.begin());
    names.push_back(n);
    return names.size() - 1;
  };
  std::vector<std::vector<const Bar*>> cell;  // [group][series]
  double ymin = 0, ymax = 0;                  // 0 always on the axis: bars are measured from it
  for (const Bar& b : bars) {
    const size_t g = index_of(groups, b.group), s = index_of(series, b.series);
    cell.resize(groups.size());
    for (auto& row : cell) row.resize(series.size(), nullptr);
    cell[g][s] = &b;
    for (double v : {b.value, b.lo, b.hi})
      if (std::isfinite(v)) ymin = std::min(ymin, v), ymax = std::max(ymax, v);
  }
  if (ymin == ymax) ymax = 1;  // no bars, or all zero: an axis from 0 to 1, not around 0
  const bool fixed = std::isfinite(o.y_range[0]) && std::isfinite(o.y_range[1]) && o.y_range[0] < o.y_range[1];
  Axis ya = nice_axis(fixed ? o.y_range[0] : ymin, fixed ? o.y_range[1] : ymax, 5);
  if (fixed) ya.lo = o.y_range[0], ya.hi = o.y_range[1];

  // Horizontal sizes: bars thinner as series grow; a group as wide as its bars or its name, whichever is wider.
  const auto G = static_cast<int64_t>(groups.size()), S = static_cast<int64_t>(std::max<size_t>(series.size(), 1));
  const int64_t bar_w = S <= 3 ? 26 : S <= 6 ? 18 : 12;
  size_t longest_group = 0;
  for (const std::string& g : groups) longest_group = std::max(longest_group, g.size());
  int64_t group_w = std::max<int64_t>(S * bar_w + 16, static_cast<int64_t>(std::min<size_t>(longest_group, 12)) * 6 + 8);  // 12 characters: (80 - 8) / 6
  std::vector<std::pair<double, std::string>> yt;
  int64_t tick_w = 0;
  for (double v : ya.ticks()) {
    yt.emplace_back(v, format_tick(v, ya.step, o.percent));
    tick_w = std::max(tick_w, Canvas::text_width(yt.back().second));
  }
  const int64_t margin = 12, left = std::max<int64_t>(44, margin + 8 + tick_w);
  // At least 240 pixels of plot, wider for the y label, the longest legend entry and (in large type, up to 800
  // pixels of canvas) the title.
  int64_t longest_series_w = 0;
  for (const std::string& n : series) longest_series_w = std::max(longest_series_w, 14 + Canvas::text_width(n));
  const int64_t min_plot_w = std::max({int64_t{240}, Canvas::text_width(y_label) + margin - left, longest_series_w,
                                       std::min<int64_t>(800, Canvas::text_width(title, 2) + 2 * margin) - left - margin});
  if (G > 0) group_w = std::max(group_w, (min_plot_w + G - 1) / G);
  const int64_t plot_w = G > 0 ? G * group_w : min_plot_w, width = left + plot_w + margin;

  // Vertical sizes: title, legend (wrapped to the width), y label, plot, group names (one or two lines).
  const int64_t room = width - 2 * margin;
  const int title_scale = Canvas::text_width(title, 2) <= room ? 2 : 1;
  std::string title_text = title;
  if (Canvas::text_width(title_text, title_scale) > room)
    title_text = title.substr(0, static_cast<size_t>(std::max<int64_t>(0, room / 6 - 2))) + "..";
  std::vector<std::pair<int64_t, int64_t>> legend_at;  // each series' swatch corner
  int64_t lx = left, ly = 8 + 7 * title_scale + 10;
  for (const std::string& n : series) {
    const int64_t item_w = 14 + Canvas::text_width(n) + 8;
    if (lx > left && lx + item_w - 8 > width - margin) lx = left, ly += 14;
    legend_at.emplace_back(lx, ly);
    lx += item_w;
  }
  const int64_t y_label_y = (series.empty() ? ly : ly + 14) + 6, top = y_label_y + 7 + 12, bottom = top + 240;
  // A line of k characters is 6k - 1 pixels; at least 9 pixels between the names of neighbouring groups.
  const auto max_chars = static_cast<size_t>((group_w - 8) / 6);
  std::vector<std::vector<std::string>> names;
  size_t name_lines = 1;
  for (const std::string& g : groups) {
    names.push_back(detail::label_lines(g, max_chars));
    name_lines = std::max(name_lines, names.back().size());
  }
  Canvas cv(width, bottom + 8 + static_cast<int64_t>(name_lines) * 10 + 8);

  auto py = [&](double y) {
    y = std::clamp(y, ya.lo, ya.hi);
    return static_cast<int64_t>(std::lround(static_cast<double>(bottom) -
                                            (y - ya.lo) / (ya.hi - ya.lo) * static_cast<double>(bottom - top)));
  };
  const Rgb axis{60, 60, 60}, grid{228, 228, 228}, whisker{40, 40, 40};
  for (const auto& [v, t] : yt) {
    const int64_t y = py(v);
    cv.fill_rect(left, y, plot_w, 1, grid);
    cv.text(left - 6 - Canvas::text_width(t), y - 3, t, axis);
  }
  const int64_t base = py(0);  // 0, or the axis' end nearest to it
  for (int64_t g = 0; g < G; ++g) {
    const int64_t gx = left + g * group_w, first_bar = gx + (group_w - S * bar_w) / 2;
    for (int64_t s = 0; s < S; ++s) {
      const Bar* b = s < static_cast<int64_t>(cell[g].size()) ? cell[g][s] : nullptr;
      if (!b) continue;
      const int64_t x = first_bar + s * bar_w + 1, w = bar_w - 2, cx = x + w / 2;  // 2 pixels between bars
      if (std::isfinite(b->value)) {
        const int64_t y = py(b->value);
        cv.fill_rect(x, std::min(y, base), w, std::abs(base - y) + 1, detail::palette(static_cast<size_t>(s)));
      }
      // Each end its own whisker from the bar's top, capped: one end may be missing.
      const double from = std::isfinite(b->value) ? b->value : 0.0;
      const int64_t cap = std::max<int64_t>(4, w / 3);
      for (double end : {b->lo, b->hi}) {
        if (!std::isfinite(end)) continue;
        const int64_t y0 = py(from), y1 = py(end);
        cv.fill_rect(cx, std::min(y0, y1), 1, std::abs(y1 - y0) + 1, whisker);
        cv.fill_rect(cx - cap / 2, y1, cap + 1, 1, whisker);
      }
    }
    for (size_t k = 0; k < names[static_cast<size_t>(g)].size(); ++k) {
      const std::string& line = names[static_cast<size_t>(g)][k];
      cv.text(gx + (group_w - Canvas::text_width(line) + 1) / 2, bottom + 8 + static_cast<int64_t>(k) * 10, line);
    }
  }
  cv.fill_rect(left, top, 1, bottom - top + 1, axis);
  cv.fill_rect(left, bottom, plot_w + 1, 1, axis);
  if (base != bottom) cv.fill_rect(left, base, plot_w + 1, 1, axis);  // the 0 line, when bars hang below it
  cv.text(margin, 8, title_text, {0, 0, 0}, title_scale);
  for (size_t s = 0; s < series.size(); ++s) {
    const auto [x, y] = legend_at[s];
    cv.fill_rect(x, y, 10, 7, detail::palette(s));
    cv.text(x + 14, y, series[s]);
  }
  cv.text(margin, y_label_y, y_label, axis);
  return cv;
}

// A confusion matrix (rows = true class) as a heat map of per-row fractions, with the counts written in the
// cells when they fit and the class names along both sides.
inline Canvas confusion_matrix_image(const std::vector<std::vector<int64_t>>& m, const std::vector<std::string>& names,
                                     const std::string& title) {
  const auto K = static_cast<int64_t>(m.size());
  const int64_t cell = K <= 12 ? 36 : K <= 40 ? 16 : std::max<int64_t>(3, 800 / std::max<int64_t>(K, 1));
  size_t longest = 0;
  for (const std::string& n : names) longest = std::max(longest, n.size());
  const bool labels = cell >= 12;
  const int64_t margin = labels ? static_cast<int64_t>(std::min<size_t>(longest, 24) + 4) * 6 + 12 : 12;
  const int64_t left = margin + 16, top = 40;
  const std::string note = "rows: true class, columns: predicted class (numbered as the rows)";
  const int64_t width = std::max({left + K * cell + 16, 32 + Canvas::text_width(title, 2), left + Canvas::text_width(note) + 16});
  Canvas cv(width, top + K * cell + 40);
  cv.text(16, 10, title, {0, 0, 0}, 2);
  for (int64_t r = 0; r < K; ++r) {
    int64_t row_total = 0;
    for (int64_t v : m[static_cast<size_t>(r)]) row_total += v;
    for (int64_t c = 0; c < K; ++c) {
      const int64_t v = m[static_cast<size_t>(r)][static_cast<size_t>(c)];
      const double f = row_total ? static_cast<double>(v) / static_cast<double>(row_total) : 0.0;
      // sqrt: a few confusions out of many (10%) still show plainly, not as a faint tint.
      const auto shade = static_cast<uint8_t>(255 - std::lround(std::sqrt(f) * 205));
      // Empty cells light grey, so the grid shows; filled ones green on the diagonal, red off it.
      const Rgb col = v == 0   ? Rgb{244, 244, 244}
                      : r == c ? Rgb{shade, static_cast<uint8_t>(std::min(255.0, shade + 30.0)), shade}
                               : Rgb{static_cast<uint8_t>(std::min(255.0, shade + 30.0)), shade, shade};
      cv.fill_rect(left + c * cell, top + r * cell, cell - 1, cell - 1, col);
      const std::string t = std::to_string(v);
      if (v && cell >= 16 && Canvas::text_width(t) <= cell - 2)
        cv.text(left + c * cell + (cell - Canvas::text_width(t)) / 2, top + r * cell + (cell - 7) / 2, t,
                shade < 120 ? Rgb{255, 255, 255} : Rgb{0, 0, 0});
    }
    if (labels && static_cast<size_t>(r) < names.size()) {
      const std::string n = std::to_string(r) + " " + names[static_cast<size_t>(r)].substr(0, 24);
      cv.text(left - 6 - Canvas::text_width(n), top + r * cell + (cell - 7) / 2, n);
      // Column names written downwards, one character per line would be unreadable: index numbers instead.
      const std::string idx = std::to_string(r);
      cv.text(left + r * cell + (cell - Canvas::text_width(idx)) / 2, top + K * cell + 4, idx, {90, 90, 90});
    }
  }
  cv.text(left, top + K * cell + 18, note, {90, 90, 90});
  return cv;
}

}  // namespace tv::viz
