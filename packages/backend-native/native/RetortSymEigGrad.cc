// Reverse-mode rule of RetortSymEig (M. B. Giles, "An extended collection of matrix derivative
// results for forward and reverse mode algorithmic differentiation", 2008, section 3.1):
//   gA = sym(V (diag(gl) + F o (V^T gV)) V^T),  F_pq = 1 / (l_q - l_p) for p != q,
// with F_pq = 0 where |l_q - l_p| <= 1e-10 max|l| (vectors of equal values are not determined).
// Only columns q with a non-zero gl[q] or gV[:, q] contribute, so a loss on the top m vectors
// costs 3 n^2 m per matrix instead of 3 n^3. Values are rebuilt in double from (values, valuesLo).
// Args: values [B*n], valuesLo [B*n], vectors [B*n*n], gValues [B*n], gVectors [B*n*n],
//       out gA [B*n*n], then n.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

namespace {

// Scratch of one thread.
struct GradWork {
  std::vector<double> lam, ga, col, u;
  explicit GradWork(int64_t n) : lam(n), ga(n * n), col(n), u(n) {}
};

}  // namespace

RETORT_KERNEL(RetortSymEigGrad) {
  const int64_t n = args.count(6, "n", 1);
  const int64_t nn = retort::prod({n, n}, retort::arg_name(6, "n") + " squared");
  const int64_t len = args.len(2, "vectors");
  if (len % nn != 0)
    throw retort::ArgError(retort::arg_name(2, "vectors") + " has " + std::to_string(len) +
                           " elements, not B matrices of " + std::to_string(n) + " x " + std::to_string(n));
  const int64_t b = len / nn;
  const int64_t bn = retort::prod({b, n}, "values");
  const float* val = args.in(0, bn, "values");
  const float* vlo = args.in(1, bn, "valuesLo");
  const float* vec = args.in(2, len, "vectors");
  const float* gval = args.in(3, bn, "gValues");
  const float* gvec = args.in(4, len, "gVectors");
  float* out = args.out(5, len, "outGx");
  if (b == 0) return;
  // Scratch per thread, allocated here: a bad_alloc inside the parallel region would end the process.
  const int nt = (b > 1 && n >= 8) ? static_cast<int>(std::min<int64_t>(omp_get_max_threads(), b)) : 1;
  std::vector<GradWork> work;
  work.reserve(nt);
  for (int t = 0; t < nt; ++t) work.emplace_back(n);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    GradWork& wk = work[omp_get_thread_num()];
    std::vector<double>& lam = wk.lam;
    std::vector<double>& ga = wk.ga;
    std::vector<double>& col = wk.col;
    std::vector<double>& u = wk.u;
#pragma omp for schedule(static)
    for (int64_t bi = 0; bi < b; ++bi) {
      const float* V = vec + bi * n * n;
      const float* G = gvec + bi * n * n;
      double scale = 1e-300;
      for (int64_t p = 0; p < n; ++p) {
        lam[p] = double(val[bi * n + p]) + double(vlo[bi * n + p]);
        scale = std::max(scale, std::fabs(lam[p]));
      }
      std::fill(ga.begin(), ga.end(), 0.0);
      for (int64_t q = 0; q < n; ++q) {
        bool active = gval[bi * n + q] != 0.0f;
        for (int64_t k = 0; k < n && !active; ++k) active = G[k * n + q] != 0.0f;
        if (!active) continue;
        // col = column q of M = diag(gl) + F o (V^T gV)
        for (int64_t p = 0; p < n; ++p) col[p] = 0;
        for (int64_t k = 0; k < n; ++k) {
          const double g = G[k * n + q];
          if (g == 0.0) continue;
          const float* vk = V + k * n;
          for (int64_t p = 0; p < n; ++p) col[p] += double(vk[p]) * g;
        }
        for (int64_t p = 0; p < n; ++p) {
          const double gap = lam[q] - lam[p];
          col[p] = p == q ? double(gval[bi * n + q]) : (std::fabs(gap) <= 1e-10 * scale ? 0.0 : col[p] / gap);
        }
        // gA += (V col) v_q^T
        for (int64_t i = 0; i < n; ++i) {
          const float* vi = V + i * n;
          double acc = 0;
          for (int64_t p = 0; p < n; ++p) acc += double(vi[p]) * col[p];
          u[i] = acc;
        }
        for (int64_t i = 0; i < n; ++i) {
          double* gi = ga.data() + i * n;
          const double ui = u[i];
          for (int64_t j = 0; j < n; ++j) gi[j] += ui * double(V[j * n + q]);
        }
      }
      float* o = out + bi * n * n;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) o[i * n + j] = float(0.5 * (ga[i * n + j] + ga[j * n + i]));
    }
  }
}
