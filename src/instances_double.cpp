// The double instances of include/tinyvid/instances.hpp, compiled once for the tinyvid::tinyvid target.
#include "tinyvid/instances.hpp"

namespace tv {
TINYVID_FLOATING_INSTANCES(template, double)
}  // namespace tv
