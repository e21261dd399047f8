#pragma once
// Reads the reference tensors that tools/fixtures/*.py write with PyTorch (see fixture_io.py for the
// format). The fixtures are committed, so the tests need no PyTorch.
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <tinyvid/tinyvid.hpp>

namespace fixtures {

#ifndef TINYVID_FIXTURE_DIR
#error "TINYVID_FIXTURE_DIR must name tests/fixtures"
#endif

class Fixture {
 public:
  explicit Fixture(const std::string& name) : path_(std::string(TINYVID_FIXTURE_DIR) + "/" + name) {
    std::ifstream in(path_);
    TV_CHECK(in.good(), "fixture: cannot open ", path_, " (regenerate it with tools/fixtures/)");
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream head(line);
      std::string word, tname;
      int64_t ndim = 0;
      head >> word >> tname >> ndim;
      TV_CHECK(word == "tensor", "fixture ", path_, ": expected a 'tensor' line, got '", line, "'");
      tv::Shape shape(ndim);
      for (auto& s : shape) head >> s;
      auto t = tv::Tensor<double>::empty(shape);
      for (int64_t i = 0; i < t.numel(); ++i) {
        TV_CHECK(static_cast<bool>(in >> t.data()[i]), "fixture ", path_, ": tensor ", tname, " ends early");
      }
      tensors_[tname] = t;
    }
  }
  // The named tensor as T (fixtures are stored in double).
  template <class T = double>
  tv::Tensor<T> get(const std::string& name) const {
    auto it = tensors_.find(name);
    TV_CHECK(it != tensors_.end(), "fixture ", path_, ": no tensor named ", name);
    auto out = tv::Tensor<T>::empty(it->second.shape());
    for (int64_t i = 0; i < out.numel(); ++i) out.data()[i] = static_cast<T>(it->second.data()[i]);
    return out;
  }
  bool has(const std::string& name) const { return tensors_.count(name) > 0; }

 private:
  std::string path_;
  std::map<std::string, tv::Tensor<double>> tensors_;
};

// Largest |a - b| / (atol + rtol |b|) over all elements; <= 1 means every element is within tolerance.
template <class A, class B>
double worst_ratio(const tv::Tensor<A>& a, const tv::Tensor<B>& b, double atol, double rtol) {
  TV_CHECK(a.shape() == b.shape(), "compare: shapes ", a.shape(), " and ", b.shape(), " differ");
  auto va = a.to_vector();
  auto vb = b.to_vector();
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    double d = std::abs(static_cast<double>(va[i]) - static_cast<double>(vb[i]));
    worst = std::max(worst, d / (atol + rtol * std::abs(static_cast<double>(vb[i]))));
  }
  return worst;
}

}  // namespace fixtures
