// tfjs Log: log(0) = -Infinity, log(x < 0) = NaN. Args: x, out.
#include "elementwise.h"

RETORT_KERNEL(Log) {
  retort::unary_map(args, [](float x) { return std::log(x); });
}
