// tfjs Relu6: Math.min(Math.max(0, x), 6): NaN stays NaN. Args: x, out.
#include "elementwise.h"

RETORT_KERNEL(Relu6) {
  retort::unary_map(args, [](float x) { return x > 0.f ? (x > 6.f ? 6.f : x) : (x != x ? x : 0.f); });
}
