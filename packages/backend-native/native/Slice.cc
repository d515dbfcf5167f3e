// tfjs Slice: out = x[begin : begin + size] per dimension. Args: x, out, shape[r], begin[r], size[r].
#include "copy_common.h"

RETORT_KERNEL(Slice) {
  auto shape = args.shape(2, "shape", 1, retort::kMaxCopyRank);
  auto size = args.shape(4, "size", shape.size(), shape.size());
  auto begin = args.ints(3, "begin", shape.size());
  const float* x = args.in(0, retort::prod(shape, "x"), "x");
  float* out = args.out(1, retort::prod(size, "out"), "out");
  // box_copy checks begin + size <= shape per dimension before copying.
  retort::box_copy(x, shape, begin, out, size, std::vector<int64_t>(size.size(), 0), size);
}
