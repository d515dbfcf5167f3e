// GatherV2 with batchDims 0 as row copies: x viewed as [outer, dim, inner], out[o, i, :] =
// x[o, idx[i], :] (tfjs's cpu kernel walks it element by element through index arithmetic).
// Indices are checked on the JS side. Args: x [outer*dim*inner], idx (Int32Array) [nIdx],
// out [outer*nIdx*inner], then outer, dim, inner.
#include <cstring>

#include "common.h"

RETORT_KERNEL(GatherV2) {
  const int64_t outer = args.i64(3);
  const int64_t dim = args.i64(4);
  const int64_t inner = args.i64(5);
  const int64_t nidx = static_cast<int64_t>(args.length(1));
  const float* x = args.f32(0, outer * dim * inner);
  const int32_t* idx = args.i32(1, nidx);
  float* out = args.f32(2, outer * nidx * inner);
  const int64_t rows = outer * nidx;
#pragma omp parallel for schedule(static) if (rows * inner > (int64_t{1} << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = r / nidx;
    const int64_t i = r % nidx;
    std::memcpy(out + r * inner, x + (o * dim + idx[i]) * inner, sizeof(float) * inner);
  }
}
