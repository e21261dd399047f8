// libFuzzer target: parse_safetensors on arbitrary bytes must return or throw tv::Error, nothing else
// (no crash, no out-of-bounds read, no undefined behaviour); accepted files must decode. Run with tools/fuzz.sh.
#include <cstddef>
#include <cstdint>

#include "tinyvid/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const tv::io::SafetensorsFile file = tv::io::parse_safetensors(data, size, "fuzz input");
    for (const auto& e : file.entries) tv::io::decode_tensor<float>(e, data + file.data_start);
  } catch (const tv::Error&) {
  }
  return 0;
}
