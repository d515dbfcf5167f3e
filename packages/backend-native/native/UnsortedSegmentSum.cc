// UnsortedSegmentSum for 1-D segment ids: out[s, :] = sum of x[i, :] over i with ids[i] = s, ids
// outside [0, S) ignored (as tfjs's cpu kernel, which builds one mask and one sum per segment:
// S passes over x). One pass; rows accumulate in order (float). Threads split the inner columns,
// so no two write the same output. Args: x [n*inner], ids (Int32Array) [n], out [S*inner], then S.
#include <cstring>

#include "common.h"

RETORT_KERNEL(UnsortedSegmentSum) {
  const int64_t s = args.count(3, "numSegments");
  const int64_t n = args.len(1, "ids");
  const int64_t len = args.len(0, "x");
  if (n == 0 || len % n != 0)
    throw retort::ArgError(retort::arg_name(0, "x") + " has " + std::to_string(len) +
                           " elements, not one row per id (" + std::to_string(n) + " ids)");
  const int64_t inner = len / n;
  const float* x = args.in(0, len, "x");
  const int32_t* ids = args.i32(1, n, "ids");
  // Ids outside [0, S) are skipped below (tfjs drops them), so out[id * inner + c] stays below S * inner.
  const int64_t out_n = retort::prod({s, inner}, "out");
  float* out = args.out(2, out_n, "out");
  std::memset(out, 0, sizeof(float) * out_n);
  if (inner == 1) {
    for (int64_t i = 0; i < n; ++i)
      if (ids[i] >= 0 && ids[i] < s) out[ids[i]] += x[i];
    return;
  }
#pragma omp parallel for schedule(static) if (len > (int64_t{1} << 16))
  for (int64_t c = 0; c < inner; ++c)
    for (int64_t i = 0; i < n; ++i)
      if (ids[i] >= 0 && ids[i] < s) out[ids[i] * inner + c] += x[i * inner + c];
}
