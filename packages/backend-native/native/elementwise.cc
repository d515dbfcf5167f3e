// Broadcast planning for the binary elementwise kernels (see elementwise.h for the normal form).
#include "elementwise.h"

namespace retort {

BroadcastPlan plan_broadcast(const std::vector<int64_t>& a_shape, const std::vector<int64_t>& b_shape) {
  const size_t rank = std::max(a_shape.size(), b_shape.size());
  if (rank > static_cast<size_t>(kMaxBroadcastRank))
    throw ArgError("broadcast rank " + std::to_string(rank) + " > " + std::to_string(kMaxBroadcastRank));
  // Right-aligned sizes (missing leading dims are 1), as tfjs's assertAndGetBroadcastShape does.
  auto at = [rank](const std::vector<int64_t>& s, size_t i) -> int64_t {
    const size_t pad = rank - s.size();
    return i < pad ? 1 : s[i - pad];
  };
  BroadcastPlan p;
  int64_t merged_a[kMaxBroadcastRank], merged_b[kMaxBroadcastRank];  // operand sizes per merged dim
  int prev_kind = -1;
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = at(a_shape, i), db = at(b_shape, i);
    if (da != db && da != 1 && db != 1)
      throw ArgError("shapes cannot be broadcast: dim " + std::to_string(i) + " is " + std::to_string(da) +
                     " vs " + std::to_string(db));
    const int64_t d = da == 1 ? db : da;
    p.size *= d;
    if (d == 1) continue;  // neither operand moves along it
    const int kind = (da == d ? 1 : 0) | (db == d ? 2 : 0);
    if (kind == prev_kind) {
      p.dims[p.rank - 1] *= d;
      merged_a[p.rank - 1] *= da;
      merged_b[p.rank - 1] *= db;
    } else {
      p.dims[p.rank] = d;
      merged_a[p.rank] = da;
      merged_b[p.rank] = db;
      ++p.rank;
      prev_kind = kind;
    }
  }
  if (p.rank == 0) {  // every dim is 1: one element each
    p.rank = 1;
    p.dims[0] = merged_a[0] = merged_b[0] = 1;
  }
  // Row-major strides of each operand over its own (merged) sizes; broadcast dims get stride 0.
  int64_t ca = 1, cb = 1;
  for (int d = p.rank - 1; d >= 0; --d) {
    p.sa[d] = merged_a[d] == 1 && p.dims[d] != 1 ? 0 : ca;
    p.sb[d] = merged_b[d] == 1 && p.dims[d] != 1 ? 0 : cb;
    ca *= merged_a[d];
    cb *= merged_b[d];
  }
  for (int64_t d : a_shape) p.a_size *= d;
  for (int64_t d : b_shape) p.b_size *= d;
  return p;
}

}  // namespace retort
