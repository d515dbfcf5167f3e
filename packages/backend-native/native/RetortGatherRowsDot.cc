// out[n, k] = sum_d table[idx[n, k], d] * x[n, d]: the scores of N vectors against K rows each of a
// [M, D] table, without materialising the [N, K, D] gathered rows (CRD's memory bank: N 128,
// K 4097, D 128 would be 268 MB per bank and step). Dot products accumulate in float, in D order.
// Args: table [M*D], idx (Int32Array) [N*K], x [N*D], out [N*K], then M, D.
#include "common.h"

RETORT_KERNEL(RetortGatherRowsDot) {
  const int64_t m = args.count(4, "M", 1);
  const int64_t d = args.count(5, "D", 1);
  const int64_t nk = args.len(1, "idx");
  const int64_t nd = args.len(2, "x");
  // N from x, K from idx; N = 0 (an empty batch) leaves K open, but then idx and out are empty too.
  if (nd % d != 0)
    throw retort::ArgError(retort::arg_name(2, "x") + " has " + std::to_string(nd) + " elements, not N rows of D = " +
                           std::to_string(d));
  const int64_t n = nd / d;
  if (n == 0 ? nk != 0 : nk % n != 0)
    throw retort::ArgError(retort::arg_name(1, "idx") + " has " + std::to_string(nk) + " elements, not N = " +
                           std::to_string(n) + " rows of K");
  const int64_t k = n == 0 ? 0 : nk / n;
  const float* table = args.in(0, retort::prod({m, d}, "table"), "table");
  const int32_t* idx = args.i32(1, retort::prod({n, k}, "idx"), "idx");
  const float* x = args.in(2, retort::prod({n, d}, "x"), "x");
  float* out = args.out(3, retort::prod({n, k}, "out"), "out");
  // Rows idx[r] < M of the table, rows r / K < N of x.
  retort::indices_in(idx, nk, m, retort::arg_name(1, "idx"));
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
