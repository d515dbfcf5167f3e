// tfjs Relu: Math.max(0, x): NaN stays NaN, -0 becomes +0. Args: x, out.
#include "elementwise.h"

RETORT_KERNEL(Relu) {
  retort::unary_map(args, [](float x) { return x > 0.f ? x : (x != x ? x : 0.f); });
}
