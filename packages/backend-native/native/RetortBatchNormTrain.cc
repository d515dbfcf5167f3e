// Batch normalization in training mode over an NHWC (or [N, C]) tensor, in one kernel: the batch
// statistics per channel (Ioffe & Szegedy, ICML 2015, Algorithm 1), the normalized output, and the
// running-statistics update, the last as PyTorch's BatchNorm2d does it (unbiased batch variance,
// m = rows / (rows - 1)) but with tfjs's momentum convention (momentum = weight of the old value).
// tfjs-layers composes this from moments + batchNormalization: about a dozen passes over the
// activation where this takes two (one for the sums, one for the output).
// Args: x [rows*C], gamma [C], beta [C], runMean [C], runVar [C],
//       out y [rows*C], mean [C], invStd [C], newRunMean [C], newRunVar [C], then C, eps, momentum.
#include <algorithm>
#include <cmath>

#include "bn_train_common.h"
#include "common.h"

RETORT_KERNEL(RetortBatchNormTrain) {
  const int64_t n = args.len(0, "x");
  const int64_t c = args.count(10, "C", 1);
  const double eps = args.num(11, "eps"), momentum = args.num(12, "momentum");
  // Rows of C: every x + r * c + j below (r < rows, j < c) is inside x and y.
  if (n == 0 || n % c != 0)
    throw retort::ArgError(retort::arg_name(10, "C") + " = " + std::to_string(c) +
                           " does not divide the (non-zero) size of x, " + std::to_string(n));
  const int64_t rows = n / c;
  const float* x = args.in(0, n, "x");
  const float* gamma = args.in(1, c, "gamma");
  const float* beta = args.in(2, c, "beta");
  const float* run_mean = args.in(3, c, "runMean");
  const float* run_var = args.in(4, c, "runVar");
  float* y = args.out(5, n, "outY");
  float* mean_out = args.out(6, c, "outMean");
  float* inv_out = args.out(7, c, "outInvStd");
  float* new_mean = args.out(8, c, "outRunMean");
  float* new_var = args.out(9, c, "outRunVar");

  // Sum and sum of squares in double: with float inputs the cancellation in E[x^2] - E[x]^2 costs
  // nothing visible at float precision unless |mean| / std exceeds ~1e4.
  std::vector<double> s1(c), s2(c);
  retort::channel_sums(rows, c, s1.data(), s2.data(), [&](int64_t r0, int64_t r1, double* a1, double* a2) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * c;
#pragma omp simd
      for (int64_t j = 0; j < c; ++j) {
        const double v = xr[j];
        a1[j] += v;
        a2[j] += v * v;
      }
    }
  });
  std::vector<double> scale(c), shift(c);
  const double unbias = rows > 1 ? double(rows) / double(rows - 1) : 1.0;
  for (int64_t j = 0; j < c; ++j) {
    const double m = s1[j] / double(rows);
    // Clamp rounding below 0, but let NaN through (std::max(0.0, NaN) is 0; tfjs's cpu kernel keeps NaN).
    const double raw = s2[j] / double(rows) - m * m;
    const double var = raw < 0.0 ? 0.0 : raw;
    const double inv = 1.0 / std::sqrt(var + eps);
    mean_out[j] = float(m);
    inv_out[j] = float(inv);
    scale[j] = double(gamma[j]) * inv;
    shift[j] = double(beta[j]) - m * scale[j];
    new_mean[j] = float(momentum * double(run_mean[j]) + (1.0 - momentum) * m);
    new_var[j] = float(momentum * double(run_var[j]) + (1.0 - momentum) * var * unbias);
  }
  const double* a = scale.data();
  const double* b = shift.data();
#pragma omp parallel for schedule(static) if (n > (int64_t{1} << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * c;
    float* yr = y + r * c;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) yr[j] = float(double(xr[j]) * a[j] + b[j]);
  }
}
