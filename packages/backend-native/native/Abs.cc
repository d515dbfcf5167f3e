// tfjs Abs. Args: x, out.
#include "elementwise.h"

RETORT_KERNEL(Abs) {
  retort::unary_map(args, [](float x) { return std::fabs(x); });
}
