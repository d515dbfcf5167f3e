// tfjs Prod over any axes (float32), multiplied in double like tfjs's JS numbers. Args: x, out, shape, axes.
#include "reduce_common.h"

namespace {
struct ProdOp {
  using Acc = double;
  static Acc init() { return 1.0; }
  static Acc step(Acc a, float x) { return a * x; }
  static Acc merge(Acc a, Acc b) { return a * b; }
  static float fin(Acc a, int64_t) { return float(a); }
};
}  // namespace

RETORT_KERNEL(Prod) { retort::run_reduce<ProdOp>(args); }
