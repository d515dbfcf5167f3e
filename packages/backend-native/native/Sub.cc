// tfjs Sub: a - b with broadcasting. Args: a, b, out, geom (elementwise.h).
#include "elementwise.h"

RETORT_KERNEL(Sub) {
  retort::binary_map(args, [](float a, float b) { return a - b; });
}
