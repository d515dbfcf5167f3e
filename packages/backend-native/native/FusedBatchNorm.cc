// tfjs FusedBatchNorm (inference form): out = offset + (x - mean) * scale / sqrt(variance + eps).
// tfjs's cpu kernel reads each parameter cyclically (element i uses p[i % p.length]); this kernel takes
// the lengths for which that is a per-channel or per-element layout: 1, C (the last dim of x) or the
// size of x. Everything is computed in double and rounded once, as in JS.
// Args: x, mean, variance, offset, scale, out, C, eps (a missing offset/scale is passed as [0]/[1]).
#include <vector>

#include "elementwise.h"

namespace {

// (row stride, column stride) of a parameter of length len seen as [rows, C]; with C dividing n, every
// index r * row + j * col (r < n / C, j < C) is below len.
struct ParamStride {
  int64_t row, col;
};
ParamStride stride_of(int64_t len, int64_t c, int64_t n, const std::string& what) {
  if (len == 1) return {0, 0};
  if (len == c) return {0, 1};
  if (len == n) return {c, 1};
  throw retort::ArgError(what + " has " + std::to_string(len) + " elements, neither 1, C = " + std::to_string(c) +
                         " nor the size of x (" + std::to_string(n) + ")");
}

}  // namespace

RETORT_KERNEL(FusedBatchNorm) {
  const int64_t n = args.len(0, "x");
  const int64_t c = args.count(6, "C", 1);
  const double eps = args.num(7, "eps");
  if (n % c != 0)
    throw retort::ArgError(retort::arg_name(6, "C") + " = " + std::to_string(c) + " does not divide the size of x (" +
                           std::to_string(n) + ")");
  const float* x = args.in(0, n, "x");
  static const char* names[4] = {"mean", "variance", "offset", "scale"};
  const float* p[4];
  ParamStride s[4];
  bool per_channel = true;
  for (int k = 0; k < 4; ++k) {
    const int64_t len = args.len(1 + k, names[k]);
    s[k] = stride_of(len, c, n, retort::arg_name(1 + k, names[k]));
    p[k] = args.in(1 + k, len, names[k]);
    per_channel = per_channel && s[k].row == 0;
  }
  float* out = args.out(5, n, "out");
  if (n == 0) return;  // nothing to write (and no C-sized tables for a C the data does not bound)
  const int64_t rows = n / c;
  if (per_channel) {
    // out = off + (x - mean) * inv with inv = scale / sqrt(var + eps) once per channel.
    std::vector<double> mean(c), inv(c), off(c);
    for (int64_t j = 0; j < c; ++j) {
      mean[j] = p[0][j * s[0].col];
      inv[j] = double(p[3][j * s[3].col]) / std::sqrt(double(p[1][j * s[1].col]) + eps);
      off[j] = p[2][j * s[2].col];
    }
    const double* m = mean.data();
    const double* iv = inv.data();
    const double* of = off.data();
    retort::parallel_range(rows, n, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * c;
        float* orow = out + r * c;
#pragma omp simd
        for (int64_t j = 0; j < c; ++j) orow[j] = float(of[j] + (double(xr[j]) - m[j]) * iv[j]);
      }
    });
    return;
  }
  retort::parallel_range(rows, n, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* pm = p[0] + r * s[0].row;
      const float* pv = p[1] + r * s[1].row;
      const float* po = p[2] + r * s[2].row;
      const float* ps = p[3] + r * s[3].row;
      const float* xr = x + r * c;
      float* orow = out + r * c;
      for (int64_t j = 0; j < c; ++j) {
        const double xm = double(xr[j]) - pm[j * s[0].col];
        orow[j] = float(po[j * s[2].col] + xm * ps[j * s[3].col] / std::sqrt(double(pv[j * s[1].col]) + eps));
      }
    }
  });
}
