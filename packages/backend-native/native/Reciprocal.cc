// tfjs Reciprocal: 1 / x. Args: x, out.
#include "elementwise.h"

RETORT_KERNEL(Reciprocal) {
  retort::unary_map(args, [](float x) { return 1.f / x; });
}
