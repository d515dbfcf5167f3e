// tfjs Mean over any axes (float32). tfjs divides each element by the count and then sums; dividing
// the double sum once is as close to the exact mean and agrees with it to ~1e-7 relative.
// Args: x, out, shape, axes.
#include "reduce_common.h"

namespace {
struct MeanOp : retort::SumOp {
  static float fin(Acc a, int64_t n) { return float(a / double(n)); }
};
}  // namespace

RETORT_KERNEL(Mean) { retort::run_reduce<MeanOp>(args); }
