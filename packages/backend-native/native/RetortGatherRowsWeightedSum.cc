// out[n, d] = sum_k w[n, k] * table[idx[n, k], d]: the gradient of RetortGatherRowsDot with respect
// to x (k in order, float accumulation). Args: table [M*D], idx (Int32Array) [N*K], w [N*K],
// out [N*D], then M, D.
#include <cstring>

#include "common.h"

RETORT_KERNEL(RetortGatherRowsWeightedSum) {
  const int64_t m = args.count(4, "M", 1);
  const int64_t d = args.count(5, "D", 1);
  const int64_t nk = args.len(1, "idx");
  const int64_t nd = args.len(3, "out");
  // N from out, K from idx; N = 0 (an empty batch) leaves K open, but then idx and w are empty too.
  if (nd % d != 0)
    throw retort::ArgError(retort::arg_name(3, "out") + " has " + std::to_string(nd) +
                           " elements, not N rows of D = " + std::to_string(d));
  const int64_t n = nd / d;
  if (n == 0 ? nk != 0 : nk % n != 0)
    throw retort::ArgError(retort::arg_name(1, "idx") + " has " + std::to_string(nk) + " elements, not N = " +
                           std::to_string(n) + " rows of K");
  const int64_t k = n == 0 ? 0 : nk / n;
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
