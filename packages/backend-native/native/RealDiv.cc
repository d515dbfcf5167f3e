// tfjs RealDiv: a / b with broadcasting (x / 0 = +-Infinity, 0 / 0 = NaN as in JS). Args: a, b, out,
// geom (elementwise.h).
#include "elementwise.h"

RETORT_KERNEL(RealDiv) {
  retort::binary_map(args, [](float a, float b) { return a / b; });
}
