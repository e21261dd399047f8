#pragma once
// Kinetics-200 (Mini-Kinetics-200, Xie et al. 2018) annotation lists from the official YouTube id lists
// (train_ytid_list.txt: 80,000 ids, val_ytid_list.txt: 5,000) and Kinetics-400 CSVs: the rows of the
// CSV whose id is listed, as MMAction2 video list entries (`<class>/<ytid>_<start>_<end>.mp4 label`),
// with the 200 classes that occur numbered in sorted order (MMAction2's convention for class indices).
// The validation CSV ships with the project; a user supplies the Kinetics-400 training CSV.
#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "tinyvid/data/annotations.hpp"

namespace tv::data {

struct Kinetics200Split {
  std::vector<std::string> classes;    // sorted class names (label i = classes[i])
  std::vector<Annotation> entries;     // the listed videos found in the CSV, in CSV order
  std::vector<std::string> missing;    // listed ids the CSV does not have
};

// ids: one YouTube id per line. csv: a Kinetics-400 annotation CSV. classes: the class list to number
// labels by; empty -> the sorted classes of the rows found (give the validation split's classes to the
// training split so both number them alike).
inline Kinetics200Split kinetics200_split(const std::string& ids_path, const std::string& csv_path,
                                          std::vector<std::string> classes = {}) {
  std::set<std::string> ids;
  {
    const std::string text = detail::read_text_file(ids_path);
    for (const auto& line : detail::split_lines(text)) {
      const std::string id = detail::strip(line);
      if (!id.empty()) ids.insert(id);
    }
  }
  TV_CHECK(!ids.empty(), ids_path, ": expected YouTube ids, one per line, got none");
  // The CSV's own class names, to read every row with one label map; then keep the listed rows.
  const std::string csv = detail::read_text_file(csv_path);
  std::set<std::string> all_classes;
  const auto lines = detail::split_lines(csv);
  for (size_t n = 1; n < lines.size(); ++n) {
    const std::string& l = lines[n];
    if (detail::strip(l).empty()) continue;
    std::string label = l[0] == '"' ? l.substr(1, l.find('"', 1) - 1) : l.substr(0, l.find(','));
    all_classes.insert(label);
  }
  const std::vector<std::string> csv_classes(all_classes.begin(), all_classes.end());
  const std::vector<Annotation> rows = parse_kinetics_csv(csv, csv_path, csv_classes);
  TV_CHECK(rows.empty() || rows.front().label() >= 0, csv_path,
           ": expected a CSV with a 'label' column (the class of each video), got none");
  Kinetics200Split out;
  std::set<std::string> found, used;
  std::vector<const Annotation*> kept;
  for (const auto& a : rows) {
    const std::string file = a.path.substr(a.path.find('/') + 1);
    const std::string id = file.substr(0, file.size() - std::string("_000000_000000.mp4").size());
    if (!ids.count(id)) continue;
    found.insert(id);
    used.insert(csv_classes[static_cast<size_t>(a.label())]);
    kept.push_back(&a);
  }
  if (classes.empty()) classes.assign(used.begin(), used.end());
  out.classes = classes;
  for (const Annotation* a : kept) {
    Annotation e = *a;
    const std::string& name = csv_classes[static_cast<size_t>(a->label())];
    auto it = std::find(classes.begin(), classes.end(), name);
    TV_CHECK(it != classes.end(), csv_path, ": class '", name, "' of ", a->path, " is not one of the ", classes.size(),
             " classes given");
    e.labels = {static_cast<int64_t>(it - classes.begin())};
    out.entries.push_back(std::move(e));
  }
  for (const auto& id : ids)
    if (!found.count(id)) out.missing.push_back(id);
  return out;
}

// Writes the split as an MMAction2 video list (`path label` per line) and the classes one per line.
inline void write_kinetics200(const Kinetics200Split& split, const std::string& list_path, const std::string& classes_path) {
  std::ofstream list(list_path), names(classes_path);
  TV_CHECK(list.good() && names.good(), "kinetics200: cannot write ", list_path, " or ", classes_path);
  list << format_video_list(split.entries);
  for (const auto& c : split.classes) names << c << "\n";
}

}  // namespace tv::data
