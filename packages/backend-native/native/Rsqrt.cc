// tfjs Rsqrt: 1 / sqrt(x) (rsqrt(0) = Infinity, rsqrt(-0) = -Infinity). Args: x, out.
// In double like JS, so the result is rounded once; float 1 / sqrtf(x) rounds twice.
#include "elementwise.h"

RETORT_KERNEL(Rsqrt) {
  retort::unary_map(args, [](float x) { return float(1.0 / std::sqrt(double(x))); });
}
