// tfjs Sum over any axes (float32), accumulated in double. Args: x, out, shape, axes.
#include "reduce_common.h"

RETORT_KERNEL(Sum) { retort::run_reduce<retort::SumOp>(args); }
