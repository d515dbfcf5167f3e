// tfjs Step: x > 0 ? 1 : alpha, NaN stays NaN (the gradient mask of Relu). Args: x, out, alpha.
#include "elementwise.h"

RETORT_KERNEL(Step) {
  const float alpha = float(args.num(2, "alpha"));
  retort::unary_map(args, [alpha](float x) { return x > 0.f ? 1.f : (x != x ? x : alpha); });
}
