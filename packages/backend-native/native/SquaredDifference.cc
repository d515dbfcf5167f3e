// tfjs SquaredDifference: (a - b)^2 with broadcasting. Args: a, b, out, geom (elementwise.h).
// In double, as tfjs computes it in JS numbers: float a - b would round before squaring.
#include "elementwise.h"

RETORT_KERNEL(SquaredDifference) {
  retort::binary_map(args, [](float a, float b) {
    const double d = double(a) - double(b);
    return float(d * d);
  });
}
