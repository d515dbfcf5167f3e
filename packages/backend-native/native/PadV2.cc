// tfjs PadV2: constant padding. Args: x, out, shape[r], before[r], outShape[r], constant.
#include <algorithm>

#include "copy_common.h"

RETORT_KERNEL(PadV2) {
  auto shape = args.shape(2, "shape", 1, retort::kMaxCopyRank);
  const size_t r = shape.size();
  auto oshape = args.shape(4, "outShape", r, r);
  auto before = args.ints(3, "before", r);
  // Each dim holds before + x + after with before, after >= 0 (box_copy checks the same before copying).
  for (size_t i = 0; i < r; i++)
    retort::in_range(before[i], 0, oshape[i] - shape[i], retort::arg_name(3, "before") + "[" + std::to_string(i) + "]");
  const float value = float(args.num(5, "constant"));
  const float* x = args.in(0, retort::prod(shape, "x"), "x");
  const int64_t out = retort::prod(oshape, "out");
  float* y = args.out(1, out, "out");
  // The pooled output buffer is dirty: fill it all, then copy the interior.
  std::fill(y, y + out, value);
  retort::box_copy(x, shape, std::vector<int64_t>(r, 0), y, oshape, before, shape);
}
