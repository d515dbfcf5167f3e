// Shapes shared by the row-lookup kernels (RetortGatherRowsDot, RetortGatherRowsWeightedSum): a
// table [M, D], indices [N, K] and a per-batch array of N rows of D, from which N is read; K then
// follows from the indices. N = 0 (an empty batch) leaves K open, but then the indices are empty too.
#pragma once
#include "common.h"

namespace retort {

struct RowsShape {
  int64_t m, d, n, k;
};

// M and D from arguments m_arg and m_arg + 1; N from the length of argument rows_arg (rows_name).
inline RowsShape rows_shape(const Args& args, size_t idx_arg, size_t rows_arg, const char* rows_name, size_t m_arg) {
  const int64_t m = args.count(m_arg, "M", 1);
  const int64_t d = args.count(m_arg + 1, "D", 1);
  const int64_t nk = args.len(idx_arg, "idx");
  const int64_t nd = args.len(rows_arg, rows_name);
  if (nd % d != 0)
    throw ArgError(arg_name(rows_arg, rows_name) + " has " + std::to_string(nd) + " elements, not N rows of D = " +
                   std::to_string(d));
  const int64_t n = nd / d;
  if (n == 0 ? nk != 0 : nk % n != 0)
    throw ArgError(arg_name(idx_arg, "idx") + " has " + std::to_string(nk) + " elements, not N = " +
                   std::to_string(n) + " rows of K");
  return {m, d, n, n == 0 ? 0 : nk / n};
}

}  // namespace retort
