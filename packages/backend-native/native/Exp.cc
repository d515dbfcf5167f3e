// tfjs Exp. Args: x, out.
#include "elementwise.h"

RETORT_KERNEL(Exp) {
  retort::unary_map(args, [](float x) { return std::exp(x); });
}
