// tfjs Sqrt (correctly rounded in float, so equal to JS sqrt rounded to float). Args: x, out.
#include "elementwise.h"

RETORT_KERNEL(Sqrt) {
  retort::unary_map(args, [](float x) { return std::sqrt(x); });
}
