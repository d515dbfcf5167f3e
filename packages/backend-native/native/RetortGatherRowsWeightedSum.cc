// out[n, d] = sum_k w[n, k] * table[idx[n, k], d]: the gradient of RetortGatherRowsDot with respect
// to x (k in order, float accumulation). Args: table [M*D], idx (Int32Array) [N*K], w [N*K],
// out [N*D], then M, D.
#include <cstring>

#include "common.h"

RETORT_KERNEL(RetortGatherRowsWeightedSum) {
  const int64_t m = args.i64(4);
  const int64_t d = args.i64(5);
  const int64_t nk = static_cast<int64_t>(args.length(1));
  const int64_t nd = static_cast<int64_t>(args.length(3));
  if (m <= 0 || d <= 0 || nd % d != 0) throw retort::ArgError("out must hold N rows of D");
  const int64_t n = nd / d;
  if (n == 0 || nk % n != 0) throw retort::ArgError("idx must hold N rows of K");
  const int64_t k = nk / n;
  const float* table = args.f32(0, m * d);
  const int32_t* idx = args.i32(1, nk);
  const float* w = args.f32(2, nk);
  float* out = args.f32(3, nd);
  for (int64_t i = 0; i < nk; ++i)
    if (idx[i] < 0 || idx[i] >= m) throw retort::ArgError("index out of range [0, M)");
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
