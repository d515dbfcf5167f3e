// tfjs Transpose (float32) of any rank: size-1 dims dropped, dims that stay neighbours merged, then
// row copies or 32x32 tiles (reduce_common.cc). Args: x, out, shape, perm.
#include "reduce_common.h"

RETORT_KERNEL(Transpose) {
  const auto dims = args.shape(2, "shape");
  const size_t rank = dims.size();
  const auto perm = args.ints(3, "perm", rank);
  std::vector<bool> seen(rank, false);
  for (size_t k = 0; k < rank; ++k) {
    const std::string at = retort::arg_name(3, "perm") + "[" + std::to_string(k) + "]";
    const int64_t p = retort::in_range(perm[k], 0, int64_t(rank) - 1, at);
    if (seen[size_t(p)]) throw retort::ArgError(at + " repeats " + std::to_string(p) + ": perm must be a permutation");
    seen[size_t(p)] = true;
  }
  // The output has x's elements in another order: the same count (an empty x moves nothing).
  const int64_t n = retort::prod(dims, retort::arg_name(2, "shape"));
  retort::transpose_f32(args.in(0, n, "x"), args.out(1, n, "out"), dims, perm);
}
