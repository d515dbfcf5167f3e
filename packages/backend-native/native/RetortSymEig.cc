// Eigendecomposition of a batch of symmetric matrices (symeig_common.h), one matrix per OpenMP
// task. Args: x [B*n*n], out values [B*n], out valuesLo [B*n] (float32 rounding remainders of the
// double-precision values, for the gradient's 1 / (l_q - l_p)), out vectors [B*n*n], then n.
#include "common.h"
#include "symeig_common.h"

RETORT_KERNEL(RetortSymEig) {
  const int64_t n = args.i64(4);
  const int64_t len = static_cast<int64_t>(args.length(0));
  if (n <= 0 || len % (n * n) != 0) throw retort::ArgError("x must hold B n x n matrices");
  const int64_t b = len / (n * n);
  const float* x = args.f32(0, len);
  float* vals = args.f32(1, b * n);
  float* lo = args.f32(2, b * n);
  float* vecs = args.f32(3, len);
  int failed = 0;
#pragma omp parallel if (b > 1 && n >= 8) reduction(+ : failed)
  {
    retort::SymEigWork w(static_cast<int>(n));
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < b; ++i)
      if (!retort::sym_eig_one(x + i * n * n, vals + i * n, lo + i * n, vecs + i * n * n, static_cast<int>(n), w))
        ++failed;
  }
  if (failed > 0) throw retort::ArgError("RetortSymEig: the QR iteration did not converge (NaN or Inf input?)");
}
