// tfjs Concat, one input per call: out[..., offset : offset + shape[axis], ...] = x along `axis`,
// every other dimension equal. Args: x, out, shape[r], outShape[r], axis, offset. The JS kernel calls
// it once per input into one pooled output, so the pieces together write all of it.
#include "copy_common.h"

RETORT_KERNEL(Concat) {
  auto shape = args.shape(2, "shape", 1, retort::kMaxCopyRank);
  const size_t r = shape.size();
  auto oshape = args.shape(3, "outShape", r, r);
  const int64_t axis = args.count(4, "axis", 0, int64_t(r) - 1);
  const int64_t offset = args.count(5, "offset", 0, oshape[size_t(axis)]);
  const float* x = args.in(0, retort::prod(shape, "x"), "x");
  float* y = args.out(1, retort::prod(oshape, "out"), "out");
  std::vector<int64_t> dstart(r, 0);
  dstart[size_t(axis)] = offset;
  // box_copy checks, dimension by dimension, that x's box fits inside out at dstart.
  retort::box_copy(x, shape, std::vector<int64_t>(r, 0), y, oshape, dstart, shape);
}
