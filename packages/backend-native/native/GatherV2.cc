// GatherV2 with batchDims 0 as row copies: x viewed as [outer, dim, inner], out[o, i, :] =
// x[o, idx[i], :] (tfjs's cpu kernel walks it element by element through index arithmetic).
// Indices are checked on the JS side and again here. Args: x [outer*dim*inner], idx (Int32Array)
// [nIdx], out [outer*nIdx*inner], then outer, dim, inner.
#include <cstring>

#include "common.h"

RETORT_KERNEL(GatherV2) {
  const int64_t outer = args.count(3, "outer");
  const int64_t dim = args.count(4, "dim");
  const int64_t inner = args.count(5, "inner");
  const int64_t nidx = args.len(1, "indices");
  const float* x = args.in(0, retort::prod({outer, dim, inner}, "x"), "x");
  const int32_t* idx = args.i32(1, nidx, "indices");
  float* out = args.out(2, retort::prod({outer, nidx, inner}, "out"), "out");
  retort::indices_in(idx, nidx, dim, "indices");
  const int64_t rows = outer * nidx;
#pragma omp parallel for schedule(static) if (rows * inner > (int64_t{1} << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = r / nidx;
    const int64_t i = r % nidx;
    std::memcpy(out + r * inner, x + (o * dim + idx[i]) * inner, sizeof(float) * inner);
  }
}
