// The int64 instances of include/tinyvid/instances.hpp, compiled once for the tinyvid::tinyvid target.
#include "tinyvid/instances.hpp"

namespace tv {
TINYVID_INDEX_INSTANCES(template, int64_t)
}  // namespace tv
