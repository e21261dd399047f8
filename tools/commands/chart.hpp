#pragma once
// tinyvid chart --csv FILE --out FILE.png [--title TEXT] [--y-label TEXT] [--percent] [--y-range LO,HI]
// A grouped bar chart with error bars (viz/plot.hpp's bar_chart) from a CSV of results, one bar a line:
// group,series,value,lo,hi, e.g. a dataset per group, a model per series, the mean over seeds with its min and max.
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <tinyvid/data/annotations.hpp>
#include <tinyvid/data/frames.hpp>
#include <tinyvid/viz/plot.hpp>

#include "common.hpp"

namespace tvcli {

// The bars of a chart CSV. Every bad line is an error naming FILE:LINE, what was expected and what was found;
// blank lines are skipped, fields are stripped of surrounding blanks.
inline std::vector<tv::viz::Bar> read_bar_csv(const std::string& path) {
  namespace d = tv::data::detail;
  const std::vector<uint8_t> bytes = tv::io::detail::read_file(path, "chart CSV");
  std::string text(bytes.begin(), bytes.end());
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);  // the byte-order mark spreadsheets write
  const std::vector<std::string> lines = d::split_lines(text);
  const std::string header = "group,series,value,lo,hi";
  TV_CHECK(!lines.empty(), path, ": expected the header line '", header, "', found an empty file");
  std::string got_header;
  for (const std::string& f : d::split_on(lines[0], ',')) got_header += (got_header.empty() ? "" : ",") + d::strip(f);
  TV_CHECK(got_header == header, d::where(path, 1), ": expected the header line '", header, "', found '", lines[0], "'");
  std::vector<tv::viz::Bar> bars;
  std::map<std::pair<std::string, std::string>, size_t> line_of;  // (group, series) -> its line, to refuse a second
  for (size_t n = 1; n < lines.size(); ++n) {
    if (d::strip(lines[n]).empty()) continue;
    const std::string where = d::where(path, n + 1);
    std::vector<std::string> f = d::split_on(lines[n], ',');
    TV_CHECK(f.size() == 5, where, ": expected 5 fields (", header, "; no commas inside names), found ", f.size(),
             " in '", lines[n], "'");
    for (std::string& x : f) x = d::strip(x);
    TV_CHECK(!f[0].empty(), where, ": expected a group name, found an empty field");
    TV_CHECK(!f[1].empty(), where, ": expected a series name, found an empty field");
    tv::viz::Bar b{.group = f[0], .series = f[1], .value = tv::parse_real(f[2], where, {}, "value")};
    if (!f[3].empty()) b.lo = tv::parse_real(f[3], where, {}, "lo");  // empty: no error bar at that end
    if (!f[4].empty()) b.hi = tv::parse_real(f[4], where, {}, "hi");
    TV_CHECK(!(b.lo > b.value), where, ": expected lo <= value, found lo ", f[3], " > value ", f[2]);
    TV_CHECK(!(b.hi < b.value), where, ": expected hi >= value, found hi ", f[4], " < value ", f[2]);
    const auto [it, fresh] = line_of.emplace(std::pair{b.group, b.series}, n + 1);
    TV_CHECK(fresh, where, ": expected one line per group and series, found group '", b.group, "', series '", b.series,
             "' also on line ", it->second);
    bars.push_back(std::move(b));
  }
  TV_CHECK(!bars.empty(), path, ": expected at least one line of bars after the header, found none");
  return bars;
}

inline Run add_chart(CLI::App& cmd) {
  struct Args {
    Text csv, out, title, y_label, y_range;
    bool percent = false;
  };
  auto a = std::make_shared<Args>();
  add_text(cmd, a->csv, "--csv", "FILE", "the bars: a header line group,series,value,lo,hi, then one bar a line");
  add_text(cmd, a->out, "--out", "FILE.png", "where the chart goes");
  add_text(cmd, a->title, "--title", "TEXT", "written above the chart (default: the CSV's name)");
  add_text(cmd, a->y_label, "--y-label", "TEXT", "what the values are, written above the y axis");
  add_flag(cmd, a->percent, "--percent", "values are fractions of 1: y ticks as percent (0.4 -> 40%)");
  add_text(cmd, a->y_range, "--y-range", "LO,HI", "a fixed y axis, e.g. 0,1 (default: round, from 0 to the data)");
  cmd.footer(wrap("Groups go along x in the order the CSV first names them, one coloured bar per series in each "
                  "(series in first-appearance order, named in the legend). lo and hi are the ends of the bar's "
                  "error bar, e.g. the min and max over seeds; leave them empty for none. Values are plain numbers "
                  "(--percent: fractions of 1, and so is --y-range). Names cannot hold commas."));
  return [a] {
    const std::string csv = a->csv.need(), out = a->out.need();
    tv::viz::ChartOptions o{.percent = a->percent};
    if (a->y_range.given()) {
      const std::string r = a->y_range.get();
      const std::vector<std::string> f = tv::data::detail::split_on(r, ',');
      TV_CHECK(f.size() == 2, "--y-range: expected LO,HI such as 0,1, got '", r, "'");
      o.y_range = {tv::parse_real(f[0], "--y-range", {}, "LO"), tv::parse_real(f[1], "--y-range", {}, "HI")};
      TV_CHECK(o.y_range[0] < o.y_range[1], "--y-range: expected LO < HI, got '", r, "'");
    }
    const std::vector<tv::viz::Bar> bars = read_bar_csv(csv);
    const std::string title = a->title.get(std::filesystem::path(csv).stem().string());
    const tv::viz::Canvas cv = tv::viz::bar_chart(bars, title, a->y_label.get(), o);
    const std::filesystem::path parent = std::filesystem::path(out).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    TV_CHECK(!ec, "cannot create '", parent.string(), "': ", ec.message());
    cv.save_png(out);
    std::printf("%s (%lldx%lld)\n", out.c_str(), static_cast<long long>(cv.width()), static_cast<long long>(cv.height()));
    return 0;
  };
}

}  // namespace tvcli
