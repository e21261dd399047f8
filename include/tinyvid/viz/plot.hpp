#pragma once
// Pictures of results, drawn on an RGB tv::data::Image and written as PNG: line charts (training curves) and
// a confusion matrix. A 5x7 pixel font is built in (digits, lowercase letters, some punctuation; capitals are
// drawn as lowercase), so no font library is needed.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "tinyvid/data/frames.hpp"
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

  void save_png(const std::string& path) const { data::write_png(path, img_); }

 private:
  data::Image img_;
};

inline std::string format_tick(double v) {
  char buf[32];
  const double a = std::abs(v);
  if (a != 0 && (a < 1e-3 || a >= 1e5)) std::snprintf(buf, sizeof(buf), "%.0e", v);
  else std::snprintf(buf, sizeof(buf), "%.3g", v);
  return buf;
}

struct Series {
  std::string name;
  std::vector<double> x, y;
  Rgb color{31, 119, 180};
};

// A chart of one or more series sharing axes, drawn into the given box of the canvas.
inline void line_chart(Canvas& cv, int64_t x0, int64_t y0, int64_t w, int64_t h, const std::vector<Series>& series,
                       const std::string& title, const std::string& x_label) {
  double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
  for (const Series& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.y[i])) {
        xmin = std::min(xmin, s.x[i]), xmax = std::max(xmax, s.x[i]);
        ymin = std::min(ymin, s.y[i]), ymax = std::max(ymax, s.y[i]);
      }
  if (xmin > xmax) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  if (xmax == xmin) xmax = xmin + 1;
  if (ymax == ymin) ymax = ymin + 1;
  const double pad = 0.05 * (ymax - ymin);
  ymin -= pad, ymax += pad;
  const int64_t left = x0 + 56, right = x0 + w - 12, top = y0 + 26, bottom = y0 + h - 34;
  auto px = [&](double x) { return static_cast<double>(left) + (x - xmin) / (xmax - xmin) * static_cast<double>(right - left); };
  auto py = [&](double y) { return static_cast<double>(bottom) - (y - ymin) / (ymax - ymin) * static_cast<double>(bottom - top); };
  const Rgb axis{60, 60, 60}, grid{225, 225, 225};
  for (int k = 0; k <= 4; ++k) {
    const double yv = ymin + (ymax - ymin) * k / 4.0, xv = xmin + (xmax - xmin) * k / 4.0;
    cv.line(static_cast<double>(left), py(yv), static_cast<double>(right), py(yv), grid);
    cv.line(px(xv), static_cast<double>(top), px(xv), static_cast<double>(bottom), grid);
    const std::string yt = format_tick(yv), xt = format_tick(xv);
    cv.text(left - 6 - Canvas::text_width(yt), static_cast<int64_t>(py(yv)) - 3, yt, axis);
    cv.text(static_cast<int64_t>(px(xv)) - Canvas::text_width(xt) / 2, bottom + 6, xt, axis);
  }
  cv.line(static_cast<double>(left), static_cast<double>(top), static_cast<double>(left), static_cast<double>(bottom), axis);
  cv.line(static_cast<double>(left), static_cast<double>(bottom), static_cast<double>(right), static_cast<double>(bottom), axis);
  cv.text(left, y0 + 6, title, {0, 0, 0}, 2);
  cv.text((left + right) / 2 - Canvas::text_width(x_label) / 2, bottom + 20, x_label, axis);
  int64_t legend_x = right;
  for (auto it = series.rbegin(); it != series.rend(); ++it) {  // legend, right-aligned in the title row
    legend_x -= Canvas::text_width(it->name) + 22;
    cv.fill_rect(legend_x, y0 + 10, 12, 4, it->color);
    cv.text(legend_x + 16, y0 + 8, it->name, {0, 0, 0});
  }
  for (const Series& s : series) {
    bool have = false;
    double lx = 0, ly = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      const double cx = px(s.x[i]), cy = py(s.y[i]);
      if (have) cv.line(lx, ly, cx, cy, s.color, 2);
      else cv.fill_rect(static_cast<int64_t>(cx) - 1, static_cast<int64_t>(cy) - 1, 3, 3, s.color);
      lx = cx, ly = cy, have = true;
    }
  }
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
      const auto shade = static_cast<uint8_t>(255 - std::lround(f * 205));
      const Rgb col = r == c ? Rgb{shade, static_cast<uint8_t>(std::min(255.0, shade + 30.0)), shade}
                             : Rgb{static_cast<uint8_t>(std::min(255.0, shade + 30.0)), shade, shade};
      cv.fill_rect(left + c * cell, top + r * cell, cell - 1, cell - 1, col);
      const std::string t = std::to_string(v);
      if (v && cell >= 16 && Canvas::text_width(t) <= cell - 2)
        cv.text(left + c * cell + (cell - Canvas::text_width(t)) / 2, top + r * cell + (cell - 7) / 2, t,
                f > 0.6 ? Rgb{255, 255, 255} : Rgb{0, 0, 0});
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
