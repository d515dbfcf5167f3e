// out = table with rows idx[r] replaced by rows[r] (a later duplicate wins, as in order): a memory
// bank's update as a new tensor (inputs are never written), copied into the caller's pooled buffer.
// Args: table [M*D], idx (Int32Array) [R], rows [R*D], out [M*D], then D.
#include <algorithm>
#include <cstring>

#include "common.h"

RETORT_KERNEL(RetortScatterRows) {
  const int64_t d = args.count(4, "D", 1);
  const int64_t md = args.len(0, "table");
  const int64_t r = args.len(1, "idx");
  if (md % d != 0)
    throw retort::ArgError(retort::arg_name(0, "table") + " has " + std::to_string(md) +
                           " elements, not M rows of D = " + std::to_string(d));
  const int64_t m = md / d;
  const float* table = args.in(0, md, "table");
  const int32_t* idx = args.i32(1, r, "idx");
  const float* rows = args.in(2, retort::prod({r, d}, "rows"), "rows");
  float* out = args.out(3, md, "out");
  // Each copied row idx[i] * D .. + D lies in out.
  retort::indices_in(idx, r, m, retort::arg_name(1, "idx"));
  const int64_t chunk = int64_t{1} << 16;
#pragma omp parallel for schedule(static) if (md > 4 * chunk)
  for (int64_t c = 0; c < md; c += chunk) std::memcpy(out + c, table + c, sizeof(float) * std::min(chunk, md - c));
  for (int64_t i = 0; i < r; ++i) std::memcpy(out + int64_t(idx[i]) * d, rows + i * d, sizeof(float) * d);
}
