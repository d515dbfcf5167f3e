// out[n, k] = sum_d table[idx[n, k], d] * x[n, d]: the scores of N vectors against K rows each of a
// [M, D] table, without materialising the [N, K, D] gathered rows (CRD's memory bank: N 128,
// K 4097, D 128 would be 268 MB per bank and step). Dot products accumulate in float, in D order.
// Args: table [M*D], idx (Int32Array) [N*K], x [N*D], out [N*K], then M, D.
#include "common.h"

RETORT_KERNEL(RetortGatherRowsDot) {
  const int64_t m = args.i64(4);
  const int64_t d = args.i64(5);
  const int64_t nk = static_cast<int64_t>(args.length(1));
  const int64_t nd = static_cast<int64_t>(args.length(2));
  if (m <= 0 || d <= 0 || nd % d != 0) throw retort::ArgError("x must hold N rows of D");
  const int64_t n = nd / d;
  if (n == 0 || nk % n != 0) throw retort::ArgError("idx must hold N rows of K");
  const int64_t k = nk / n;
  const float* table = args.f32(0, m * d);
  const int32_t* idx = args.i32(1, nk);
  const float* x = args.f32(2, nd);
  float* out = args.f32(3, nk);
  for (int64_t i = 0; i < nk; ++i)
    if (idx[i] < 0 || idx[i] >= m) throw retort::ArgError("index out of range [0, M)");
#pragma omp parallel for schedule(static) if (nk * d > (int64_t{1} << 16))
  for (int64_t r = 0; r < nk; ++r) {
    const float* row = table + int64_t(idx[r]) * d;
    const float* xr = x + (r / k) * d;
    float acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t j = 0; j < d; ++j) acc += row[j] * xr[j];
    out[r] = acc;
  }
}
