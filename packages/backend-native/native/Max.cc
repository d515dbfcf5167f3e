// tfjs Max over any axes (float32); NaN propagates as in tfjs. Args: x, out, shape, axes.
#include "reduce_common.h"

RETORT_KERNEL(Max) { retort::run_reduce<retort::ExtremeOp<true>>(args); }
