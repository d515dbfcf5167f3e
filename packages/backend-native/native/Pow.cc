// tfjs Pow: Math.pow(a, b) with broadcasting. Args: a, b, out, geom (elementwise.h).
// Computed in double like JS, with the two places where JS and C pow disagree: a NaN exponent gives NaN
// even for base 1 (C: 1), and (+-1) ** (+-Infinity) is NaN (C: 1). Not vectorized (scalar pow).
#include "elementwise.h"

RETORT_KERNEL(Pow) {
  retort::binary_map(args, [](float a, float b) {
    if (b != b || (std::fabs(a) == 1.f && std::isinf(b))) return retort::kNaN;
    return float(std::pow(double(a), double(b)));
  });
}
