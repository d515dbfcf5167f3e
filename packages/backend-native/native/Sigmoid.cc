// tfjs Sigmoid: 1 / (1 + exp(-x)). Args: x, out.
#include "elementwise.h"

RETORT_KERNEL(Sigmoid) {
  retort::unary_map(args, [](float x) { return 1.f / (1.f + std::exp(-x)); });
}
