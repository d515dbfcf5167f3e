// Eigendecomposition of a batch of symmetric matrices (symeig_common.h), one matrix per OpenMP
// task. Args: x [B*n*n], out values [B*n], out valuesLo [B*n] (float32 rounding remainders of the
// double-precision values, for the gradient's 1 / (l_q - l_p)), out vectors [B*n*n], then n.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "common.h"
#include "symeig_common.h"

RETORT_KERNEL(RetortSymEig) {
  // n * n within kMaxElems, so n <= 2^20 fits the int the solver indexes with.
  const int64_t n = args.count(4, "n", 1);
  const int64_t nn = retort::prod({n, n}, retort::arg_name(4, "n") + " squared");
  const int64_t len = args.len(0, "x");
  if (len % nn != 0)
    throw retort::ArgError(retort::arg_name(0, "x") + " has " + std::to_string(len) + " elements, not B matrices of " +
                           std::to_string(n) + " x " + std::to_string(n));
  const int64_t b = len / nn;
  const float* x = args.in(0, len, "x");
  float* vals = args.out(1, retort::prod({b, n}, "values"), "outValues");
  float* lo = args.out(2, retort::prod({b, n}, "valuesLo"), "outValuesLo");
  float* vecs = args.out(3, len, "outVectors");
  if (b == 0) return;
  // Scratch per thread, allocated here: a bad_alloc inside the parallel region would end the process.
  const int nt = (b > 1 && n >= 8) ? static_cast<int>(std::min<int64_t>(omp_get_max_threads(), b)) : 1;
  std::vector<retort::SymEigWork> work;
  work.reserve(nt);
  for (int t = 0; t < nt; ++t) work.emplace_back(static_cast<int>(n));
  int failed = 0;
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(+ : failed)
  {
    retort::SymEigWork& w = work[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < b; ++i)
      if (!retort::sym_eig_one(x + i * nn, vals + i * n, lo + i * n, vecs + i * nn, static_cast<int>(n), w)) ++failed;
  }
  if (failed > 0) throw retort::ArgError("the QR iteration did not converge (NaN or Inf input?)");
}
