// tfjs FusedBatchNorm (inference form): out = offset + (x - mean) * scale / sqrt(variance + eps).
// tfjs's cpu kernel reads each parameter cyclically (element i uses p[i % p.length]); this kernel takes
// the lengths for which that is a per-channel or per-element layout: 1, C (the last dim of x) or the
// size of x. Everything is computed in double and rounded once, as in JS.
// Args: x, mean, variance, offset, scale, out, C, eps (a missing offset/scale is passed as [0]/[1]).
#include <vector>

#include "elementwise.h"

namespace {

// (row stride, column stride) of a parameter of length len seen as [rows, C].
struct ParamStride {
  int64_t row, col;
};
ParamStride stride_of(size_t len, int64_t c, int64_t n) {
  if (len == 1) return {0, 0};
  if (static_cast<int64_t>(len) == c) return {0, 1};
  if (static_cast<int64_t>(len) == n) return {c, 1};
  throw retort::ArgError("parameter length " + std::to_string(len) + " is neither 1, C = " + std::to_string(c) +
                         " nor the size of x");
}

}  // namespace

RETORT_KERNEL(FusedBatchNorm) {
  const int64_t n = static_cast<int64_t>(args.length(0));
  const int64_t c = args.i64(6);
  const double eps = args.f64(7);
  if (c <= 0 || n % c != 0) throw retort::ArgError("C must divide the size of x");
  const float* x = args.f32(0, n);
  const float* p[4];  // mean, variance, offset, scale
  ParamStride s[4];
  bool per_channel = true;
  for (int k = 0; k < 4; ++k) {
    p[k] = args.f32(1 + k);
    s[k] = stride_of(args.length(1 + k), c, n);
    per_channel = per_channel && s[k].row == 0;
  }
  float* out = args.f32(5, n);
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
