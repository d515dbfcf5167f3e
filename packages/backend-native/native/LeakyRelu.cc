// tfjs LeakyRelu: x < 0 ? alpha * x : x. Args: x, out, alpha.
// The product is taken in double and rounded once, as JS does with its double alpha (0.2 is not a float).
#include "elementwise.h"

RETORT_KERNEL(LeakyRelu) {
  const double alpha = args.num(2, "alpha");
  retort::unary_map(args, [alpha](float x) { return x < 0.f ? float(alpha * double(x)) : x; });
}
