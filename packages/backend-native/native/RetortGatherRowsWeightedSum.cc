// out[n, d] = sum_k w[n, k] * table[idx[n, k], d]: the gradient of RetortGatherRowsDot with respect
// to x (k in order, float accumulation). Args: table [M*D], idx (Int32Array) [N*K], w [N*K],
// out [N*D], then M, D.
#include <cstring>

#include "rows_common.h"

RETORT_KERNEL(RetortGatherRowsWeightedSum) {
  const retort::RowsShape shape = retort::rows_shape(args, 1, 3, "out", 4);
  const int64_t m = shape.m, d = shape.d, n = shape.n, k = shape.k;
  const int64_t nk = n * k;
  const float* table = args.in(0, retort::prod({m, d}, "table"), "table");
  const int32_t* idx = args.i32(1, retort::prod({n, k}, "idx"), "idx");
  const float* w = args.in(2, retort::prod({n, k}, "w"), "w");
  float* out = args.out(3, retort::prod({n, d}, "out"), "out");
  // Rows idx[i * K + j] < M of the table.
  retort::indices_in(idx, nk, m, retort::arg_name(1, "idx"));
#pragma omp parallel for schedule(static) if (nk * d > (int64_t{1} << 16))
  for (int64_t i = 0; i < n; ++i) {
    float* o = out + i * d;
    std::memset(o, 0, sizeof(float) * d);
    for (int64_t j = 0; j < k; ++j) {
      const float wj = w[i * k + j];
      const float* row = table + int64_t(idx[i * k + j]) * d;
#pragma omp simd
      for (int64_t c = 0; c < d; ++c) o[c] += wj * row[c];
    }
  }
}
