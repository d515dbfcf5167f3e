// tfjs Tanh. Args: x, out.
#include "elementwise.h"

RETORT_KERNEL(Tanh) {
  retort::unary_map(args, [](float x) { return std::tanh(x); });
}
