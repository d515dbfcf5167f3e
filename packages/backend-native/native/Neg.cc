// tfjs Neg (-1 * x). Args: x, out.
#include "elementwise.h"

RETORT_KERNEL(Neg) {
  retort::unary_map(args, [](float x) { return -x; });
}
