// tfjs Maximum: Math.max(a, b) with broadcasting (NaN wins, +0 > -0). Args: a, b, out, geom (elementwise.h).
#include "elementwise.h"

RETORT_KERNEL(Maximum) {
  retort::binary_map(args, [](float a, float b) { return retort::js_max(a, b); });
}
