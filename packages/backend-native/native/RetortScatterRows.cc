// out = table with rows idx[r] replaced by rows[r] (a later duplicate wins, as in order): a memory
// bank's update as a new tensor (inputs are never written), copied into the caller's pooled buffer.
// Args: table [M*D], idx (Int32Array) [R], rows [R*D], out [M*D], then D.
#include <algorithm>
#include <cstring>

#include "common.h"

RETORT_KERNEL(RetortScatterRows) {
  const int64_t d = args.i64(4);
  const int64_t md = static_cast<int64_t>(args.length(0));
  const int64_t r = static_cast<int64_t>(args.length(1));
  if (d <= 0 || md % d != 0) throw retort::ArgError("table must hold M rows of D");
  const int64_t m = md / d;
  const float* table = args.f32(0, md);
  const int32_t* idx = args.i32(1, r);
  const float* rows = args.f32(2, r * d);
  float* out = args.f32(3, md);
  for (int64_t i = 0; i < r; ++i)
    if (idx[i] < 0 || idx[i] >= m) throw retort::ArgError("index out of range [0, M)");
  const int64_t chunk = int64_t{1} << 16;
#pragma omp parallel for schedule(static) if (md > 4 * chunk)
  for (int64_t c = 0; c < md; c += chunk) std::memcpy(out + c, table + c, sizeof(float) * std::min(chunk, md - c));
  for (int64_t i = 0; i < r; ++i) std::memcpy(out + int64_t(idx[i]) * d, rows + i * d, sizeof(float) * d);
}
