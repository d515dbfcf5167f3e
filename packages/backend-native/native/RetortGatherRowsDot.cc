// out[n, k] = sum_d table[idx[n, k], d] * x[n, d]: the scores of N vectors against K rows each of a
// [M, D] table, without materialising the [N, K, D] gathered rows (CRD's memory bank: N 128,
// K 4097, D 128 would be 268 MB per bank and step). Dot products accumulate in float, in D order.
// Args: table [M*D], idx (Int32Array) [N*K], x [N*D], out [N*K], then M, D.
#include "rows_common.h"

RETORT_KERNEL(RetortGatherRowsDot) {
  const retort::RowsShape shape = retort::rows_shape(args, 1, 2, "x", 4);
  const int64_t m = shape.m, d = shape.d, n = shape.n, k = shape.k;
  const int64_t nk = n * k;
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
