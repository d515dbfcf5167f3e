// tfjs Transpose (float32) of any rank: size-1 dims dropped, dims that stay neighbours merged, then
// row copies or 32x32 tiles (reduce_common.cc). Args: x, out, shape, perm.
#include "reduce_common.h"

RETORT_KERNEL(Transpose) {
  const auto dims = args.dims(2);
  int64_t n = 1;
  for (auto d : dims) n *= d;
  retort::transpose_f32(args.f32(0, size_t(n)), args.f32(1, size_t(n)), dims, args.dims(3));
}
