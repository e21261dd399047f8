#pragma once
// Test metrics as MMAction2 computes them (mmaction/evaluation/functional/accuracy.py):
// - top-k accuracy: a hit when the label is among the k highest scores (all classes when k > classes);
// - confusion matrix: rows = true class, columns = predicted (argmax) class;
// - mean class accuracy: the mean of per-class recall over the classes that occur in the labels or the
//   predictions (a class only ever predicted, never present, counts as 0); classes in neither are left out.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <set>
#include <vector>

#include "tinyvid/core/error.hpp"

namespace tv::train {

// Scores of one video per row.
using ScoreTable = std::vector<std::vector<float>>;

inline void check_scores(const ScoreTable& scores, const std::vector<int64_t>& labels, const char* what) {
  TV_CHECK(scores.size() == labels.size(), what, ": expected one label per score row, got ", scores.size(),
           " rows and ", labels.size(), " labels");
  for (size_t i = 0; i < scores.size(); ++i) {
    TV_CHECK(!scores[i].empty() && scores[i].size() == scores[0].size(), what, ": row ", i, " has ", scores[i].size(),
             " scores, expected ", scores[0].size());
    TV_CHECK(labels[i] >= 0 && labels[i] < static_cast<int64_t>(scores[i].size()), what, ": label ", labels[i],
             " of row ", i, " is not a class index in [0, ", scores[i].size(), ")");
  }
}

inline int64_t argmax(const std::vector<float>& row) {
  return static_cast<int64_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

inline double top_k_accuracy(const ScoreTable& scores, const std::vector<int64_t>& labels, int64_t k) {
  check_scores(scores, labels, "top_k_accuracy");
  TV_CHECK(k >= 1, "top_k_accuracy: expected k >= 1, got ", k);
  if (scores.empty()) return 0.0;
  int64_t hits = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    const float mine = scores[i][static_cast<size_t>(labels[i])];
    // Rank of the label's score = classes scoring strictly higher (ties count in the label's favour).
    int64_t higher = 0;
    for (float s : scores[i]) higher += s > mine;
    hits += higher < k;
  }
  return static_cast<double>(hits) / static_cast<double>(scores.size());
}

// num_classes x num_classes counts, [true][predicted].
inline std::vector<std::vector<int64_t>> confusion_matrix(const ScoreTable& scores, const std::vector<int64_t>& labels) {
  check_scores(scores, labels, "confusion_matrix");
  const size_t K = scores.empty() ? 0 : scores[0].size();
  std::vector<std::vector<int64_t>> m(K, std::vector<int64_t>(K, 0));
  for (size_t i = 0; i < scores.size(); ++i) ++m[static_cast<size_t>(labels[i])][static_cast<size_t>(argmax(scores[i]))];
  return m;
}

inline double mean_class_accuracy(const ScoreTable& scores, const std::vector<int64_t>& labels) {
  const auto m = confusion_matrix(scores, labels);
  double sum = 0;
  int64_t classes = 0;
  for (size_t c = 0; c < m.size(); ++c) {
    const int64_t truth = std::accumulate(m[c].begin(), m[c].end(), int64_t{0});
    int64_t predicted = 0;
    for (size_t r = 0; r < m.size(); ++r) predicted += m[r][c];
    if (truth == 0 && predicted == 0) continue;  // in neither: not one of MMAction2's classes
    ++classes;
    if (truth > 0) sum += static_cast<double>(m[c][c]) / static_cast<double>(truth);
  }
  return classes ? sum / static_cast<double>(classes) : 0.0;
}

}  // namespace tv::train
