// Batched symmetric eigendecomposition in double: Householder reduction to tridiagonal form, then
// the implicit symmetric QR algorithm with Wilkinson shifts (Golub and Van Loan, "Matrix
// Computations", 4th ed., algorithms 8.3.1 and 8.3.3). About 9 n^3 flops with vectors, against
// ~30 n^3 for the cyclic Jacobi sweeps it replaced (KDSVD's 64 x 64 Grams). The JS kernel in
// src/custom/symeig_kernels.ts is the same algorithm step for step, so both sides agree to rounding.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace retort {

// Scratch of one n x n problem; reused across the matrices a thread handles.
struct SymEigWork {
  std::vector<double> a, qt, d, e, v, p;
  std::vector<int> order;
  explicit SymEigWork(int n) : a(size_t(n) * n), qt(size_t(n) * n), d(n), e(n), v(n), p(n), order(n) {}
};

// Reduces the symmetric a (row-major, both triangles, overwritten) to T = Q^T a Q with diagonal d
// and off-diagonal e (e[i] couples i and i + 1). qt holds Q^T: row k is Q's column k.
inline void householder_tridiagonal(SymEigWork& w, int n) {
  double* a = w.a.data();
  double* qt = w.qt.data();
  std::fill(w.qt.begin(), w.qt.end(), 0.0);
  for (int i = 0; i < n; ++i) qt[size_t(i) * n + i] = 1.0;
  double* v = w.v.data();
  double* p = w.p.data();
  for (int k = 0; k + 2 < n; ++k) {
    const int m = n - k - 1;  // length of the column below the diagonal
    const double* row = a + size_t(k) * n + k + 1;
    double tail = 0;
    for (int i = 1; i < m; ++i) tail += row[i] * row[i];
    if (tail == 0.0) continue;  // already tridiagonal in this column
    for (int i = 0; i < m; ++i) v[i] = row[i];
    const double alpha = -std::copysign(std::sqrt(tail + v[0] * v[0]), v[0]);
    v[0] -= alpha;
    const double beta = 2.0 / (tail + v[0] * v[0]);
    // H = I - beta v v^T on the trailing block S: S <- H S H = S - v w^T - w v^T with
    // p = beta S v, w = p - (beta / 2)(v^T p) v.
    double* s = a + size_t(k + 1) * n + k + 1;
    double vp = 0;
    for (int i = 0; i < m; ++i) {
      const double* si = s + size_t(i) * n;
      double acc = 0;
      for (int j = 0; j < m; ++j) acc += si[j] * v[j];
      p[i] = beta * acc;
      vp += v[i] * p[i];
    }
    const double kk = 0.5 * beta * vp;
    for (int i = 0; i < m; ++i) p[i] -= kk * v[i];
    for (int i = 0; i < m; ++i) {
      double* si = s + size_t(i) * n;
      const double vi = v[i], pi = p[i];
      for (int j = 0; j < m; ++j) si[j] -= vi * p[j] + pi * v[j];
    }
    a[size_t(k) * n + k + 1] = alpha;
    a[size_t(k + 1) * n + k] = alpha;
    for (int i = 1; i < m; ++i) {
      a[size_t(k) * n + k + 1 + i] = 0;
      a[size_t(k + 1 + i) * n + k] = 0;
    }
    // Q <- Q H: rows k+1.. of Q^T change by -beta v (v^T Q^T[k+1..]).
    double* q0 = qt + size_t(k + 1) * n;
    std::fill(p, p + n, 0.0);
    for (int j = 0; j < m; ++j) {
      const double* qj = q0 + size_t(j) * n;
      const double vj = v[j];
      for (int i = 0; i < n; ++i) p[i] += vj * qj[i];
    }
    for (int j = 0; j < m; ++j) {
      double* qj = q0 + size_t(j) * n;
      const double f = beta * v[j];
      for (int i = 0; i < n; ++i) qj[i] -= f * p[i];
    }
  }
  for (int i = 0; i < n; ++i) {
    w.d[i] = a[size_t(i) * n + i];
    w.e[i] = i + 1 < n ? a[size_t(i) * n + i + 1] : 0.0;
  }
}

// Diagonalizes the tridiagonal (d, e) by implicit QR steps, rotating the rows of qt along.
// Returns false if it did not converge within 60 n steps (never seen; the caller reports it).
inline bool tridiagonal_qr(SymEigWork& w, int n) {
  double* d = w.d.data();
  double* e = w.e.data();
  double* qt = w.qt.data();
  const double eps = std::numeric_limits<double>::epsilon();
  const double tiny = std::numeric_limits<double>::min() / eps;
  auto negligible = [&](int i) { return std::fabs(e[i]) <= eps * (std::fabs(d[i]) + std::fabs(d[i + 1])) + tiny; };
  int hi = n - 1;
  int steps = 0;
  while (hi > 0) {
    if (negligible(hi - 1)) {
      e[hi - 1] = 0;
      --hi;
      continue;
    }
    int lo = hi - 1;
    while (lo > 0 && !negligible(lo - 1)) --lo;
    if (lo > 0) e[lo - 1] = 0;
    if (++steps > 60 * n) return false;
    // Wilkinson shift: the eigenvalue of the trailing 2 x 2 nearer to d[hi].
    const double delta = 0.5 * (d[hi - 1] - d[hi]);
    const double eh = e[hi - 1];
    const double mu = d[hi] - eh * eh / (delta + std::copysign(std::hypot(delta, eh), delta));
    double x = d[lo] - mu;
    double z = e[lo];
    for (int k = lo; k < hi; ++k) {
      const double r = std::hypot(x, z);
      const double c = r == 0 ? 1.0 : x / r;
      const double s = r == 0 ? 0.0 : z / r;
      if (k > lo) e[k - 1] = r;
      const double dk = d[k], f = e[k], g = d[k + 1];
      d[k] = c * c * dk + 2 * c * s * f + s * s * g;
      d[k + 1] = s * s * dk - 2 * c * s * f + c * c * g;
      e[k] = c * s * (g - dk) + (c * c - s * s) * f;
      if (k + 1 < hi) {
        z = s * e[k + 1];
        e[k + 1] *= c;
        x = e[k];
      }
      double* qk = qt + size_t(k) * n;
      double* ql = qk + n;
      for (int i = 0; i < n; ++i) {
        const double a0 = qk[i], a1 = ql[i];
        qk[i] = c * a0 + s * a1;
        ql[i] = c * a1 - s * a0;
      }
    }
  }
  return true;
}

// One float32 matrix x (n x n, row-major; symmetrised as (x + x^T) / 2) -> values (descending),
// their float32 rounding remainders, and vectors as columns (vecs[k * n + j]: entry k of vector j),
// each vector's largest-magnitude entry (the first, on ties) made positive.
inline bool sym_eig_one(const float* x, float* vals, float* vals_lo, float* vecs, int n, SymEigWork& w) {
  double amax = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const double y = 0.5 * (double(x[size_t(i) * n + j]) + double(x[size_t(j) * n + i]));
      w.a[size_t(i) * n + j] = y;
      amax = std::max(amax, std::fabs(y));
    }
  // Scaled to unit max entry so that neither overflow nor the absolute floor of the deflation
  // test depends on the features' scale; the vectors do not change, the values are scaled back.
  const double scale = amax > 0 ? amax : 1.0;
  for (double& y : w.a) y /= scale;
  householder_tridiagonal(w, n);
  const bool ok = tridiagonal_qr(w, n);
  std::iota(w.order.begin(), w.order.end(), 0);
  std::stable_sort(w.order.begin(), w.order.end(), [&](int i, int j) { return w.d[i] > w.d[j]; });
  for (int j = 0; j < n; ++j) {
    const int src = w.order[j];
    const double lam = w.d[src] * scale;
    vals[j] = float(lam);
    vals_lo[j] = float(lam - double(vals[j]));
    const double* q = w.qt.data() + size_t(src) * n;
    double big = 0;
    for (int k = 0; k < n; ++k)
      if (std::fabs(q[k]) > std::fabs(big)) big = q[k];
    const double sign = big < 0 ? -1.0 : 1.0;
    for (int k = 0; k < n; ++k) vecs[size_t(k) * n + j] = float(sign * q[k]);
  }
  return ok;
}

}  // namespace retort
