// tfjs Square: x * x. Args: x, out.
#include "elementwise.h"

RETORT_KERNEL(Square) {
  retort::unary_map(args, [](float x) { return x * x; });
}
