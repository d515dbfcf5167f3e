// tfjs Elu: x >= 0 ? x : exp(x) - 1. Args: x, out.
// expm1 instead of exp(x) - 1 in float, which cancels near 0 (JS subtracts in double and does not).
#include "elementwise.h"

RETORT_KERNEL(Elu) {
  retort::unary_map(args, [](float x) { return x >= 0.f ? x : std::expm1(x); });
}
