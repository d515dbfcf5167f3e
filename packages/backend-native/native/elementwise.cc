// Broadcast planning for the binary elementwise kernels (see elementwise.h for the normal form).
#include "elementwise.h"

namespace retort {

BroadcastPlan plan_broadcast(const std::vector<int64_t>& a_shape, const std::vector<int64_t>& b_shape) {
  const size_t rank = std::max(a_shape.size(), b_shape.size());
  if (rank > static_cast<size_t>(kMaxBroadcastRank))
    throw ArgError("broadcast rank " + std::to_string(rank) + " > " + std::to_string(kMaxBroadcastRank));
  BroadcastPlan p;
  // Sizes >= 0 and products within kMaxElems before any of them is used as a length or stride.
  p.a_size = prod(a_shape, "shape of a");
  p.b_size = prod(b_shape, "shape of b");
  // Right-aligned sizes (missing leading dims are 1), as tfjs's assertAndGetBroadcastShape does.
  auto at = [rank](const std::vector<int64_t>& s, size_t i) -> int64_t {
    const size_t pad = rank - s.size();
    return i < pad ? 1 : s[i - pad];
  };
  std::vector<int64_t> out_shape(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = at(a_shape, i), db = at(b_shape, i);
    if (da != db && da != 1 && db != 1)
      throw ArgError("shapes cannot be broadcast: dim " + std::to_string(i) + " is " + std::to_string(da) +
                     " vs " + std::to_string(db));
    out_shape[i] = da == 1 ? db : da;
  }
  p.size = prod(out_shape, "broadcast shape");
  // Empty output: no loop runs. Past this point every size is >= 1, so each merged dim and each stride
  // below is a product of sizes whose whole product is checked (no overflow).
  if (p.size == 0) return p;
  int64_t merged_a[kMaxBroadcastRank], merged_b[kMaxBroadcastRank];  // operand sizes per merged dim
  int prev_kind = -1;
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = at(a_shape, i), db = at(b_shape, i);
    const int64_t d = out_shape[i];
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
  return p;
}

BroadcastPlan broadcast_geometry(const Args& args, size_t i) {
  const std::string at = arg_name(i, "geometry");
  const auto g = args.ints(i, "geometry");
  const int64_t len = static_cast<int64_t>(g.size());
  if (len < 2) throw ArgError(at + " has " + std::to_string(len) + " values, expected [rankA, rankB, ...]");
  const int64_t ra = in_range(g[0], 0, kMaxBroadcastRank, at + " rankA");
  const int64_t rb = in_range(g[1], 0, kMaxBroadcastRank, at + " rankB");
  in_range(len, 2 + ra + rb, 2 + ra + rb, at + " length (2 + rankA + rankB)");
  const std::vector<int64_t> a_shape(g.begin() + 2, g.begin() + 2 + ra);
  const std::vector<int64_t> b_shape(g.begin() + 2 + ra, g.end());
  for (int64_t k = 0; k < ra; ++k) in_range(a_shape[k], 0, kMaxElems, at + " aShape[" + std::to_string(k) + "]");
  for (int64_t k = 0; k < rb; ++k) in_range(b_shape[k], 0, kMaxElems, at + " bShape[" + std::to_string(k) + "]");
  try {
    return plan_broadcast(a_shape, b_shape);
  } catch (const ArgError& e) {
    throw ArgError(at + ": " + e.what());
  }
}

}  // namespace retort
