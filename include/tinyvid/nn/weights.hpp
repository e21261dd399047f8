#pragma once
// A module's weights to and from a safetensors file. In tv::io beside the file format, but on the nn floor
// because it takes a Module.
#include <string>
#include <type_traits>

#include "tinyvid/io/safetensors.hpp"
#include "tinyvid/nn/module.hpp"
#include "tinyvid/ops/reduce.hpp"

namespace tv::io {

// A module's state_dict to a file, marked {"format": "pt"} since its names and layouts are PyTorch's;
// float_dtype as save_safetensors (F16 / BF16 for half-size files).
template <class T>
void save_weights(const nn::Module<T>& m, const std::string& path,
                  Dtype float_dtype = std::is_same_v<T, float> ? Dtype::F32 : Dtype::F64) {
  save_safetensors<T>(path, m.state_dict(), {{"format", "pt"}}, float_dtype);
}

// Loads a file written by save_weights (or PyTorch's safetensors) into a module; strict as
// Module::load_state_dict, whose message about missing, unexpected or misshapen keys is kept.
// Every tensor must be finite: a NaN or infinity is an error naming the file, the tensor and the element.
template <class T>
void load_weights(nn::Module<T>& m, const std::string& path, bool strict = true) {
  auto loaded = load_safetensors<T>(path);
  // A NaN or infinity loaded silently would make every output NaN.
  for (const auto& [name, t] : loaded) check_finite(t, "load_weights '" + path + "': tensor '" + name + "'");
  nn::StateDict<T> dict(loaded.begin(), loaded.end());
  try {
    m.load_state_dict(dict, strict);
  } catch (const Error& e) {
    std::string msg = e.what();
    const std::string prefix = "tinyvid: ";
    if (msg.compare(0, prefix.size(), prefix) == 0) msg.erase(0, prefix.size());
    TV_FAIL("load_weights '", path, "': ", msg);
  }
}

}  // namespace tv::io
