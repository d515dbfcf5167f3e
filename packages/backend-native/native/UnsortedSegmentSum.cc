// UnsortedSegmentSum for 1-D segment ids: out[s, :] = sum of x[i, :] over i with ids[i] = s, ids
// outside [0, S) ignored (as tfjs's cpu kernel, which builds one mask and one sum per segment:
// S passes over x). One pass; rows accumulate in order (float). Threads split the inner columns,
// so no two write the same output. Args: x [n*inner], ids (Int32Array) [n], out [S*inner], then S.
#include <cstring>

#include "common.h"

RETORT_KERNEL(UnsortedSegmentSum) {
  const int64_t s = args.i64(3);
  const int64_t n = static_cast<int64_t>(args.length(1));
  const int64_t len = static_cast<int64_t>(args.length(0));
  if (n == 0 || len % n != 0 || s < 0) throw retort::ArgError("x must hold one row per segment id");
  const int64_t inner = len / n;
  const float* x = args.f32(0, len);
  const int32_t* ids = args.i32(1, n);
  float* out = args.f32(2, s * inner);
  std::memset(out, 0, sizeof(float) * s * inner);
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
