// Gradient of RetortBatchNormTrain with respect to x, gamma and beta, with xh = (x - mean) * invStd
// and M rows per channel:
//   dbeta = sum dy,  dgamma = sum dy * xh,
//   dx = gamma * invStd * (dy - dbeta / M - xh * dgamma / M)
// (the batch mean and variance depend on x; Ioffe & Szegedy 2015, section 3). Two passes.
// Args: dy [rows*C], x [rows*C], gamma [C], mean [C], invStd [C], out dx [rows*C], dgamma [C],
//       dbeta [C], then C.
#include "bn_train_common.h"
#include "common.h"

RETORT_KERNEL(RetortBatchNormTrainGrad) {
  const int64_t n = args.len(0, "dy");
  const int64_t c = args.count(8, "C", 1);
  // Rows of C: every dy/x/dx + r * c + j below (r < rows, j < c) is inside its array.
  if (n == 0 || n % c != 0)
    throw retort::ArgError(retort::arg_name(8, "C") + " = " + std::to_string(c) +
                           " does not divide the (non-zero) size of dy, " + std::to_string(n));
  const int64_t rows = n / c;
  const float* dy = args.in(0, n, "dy");
  const float* x = args.in(1, n, "x");
  const float* gamma = args.in(2, c, "gamma");
  const float* mean = args.in(3, c, "mean");
  const float* inv = args.in(4, c, "invStd");
  float* dx = args.out(5, n, "outDx");
  float* dgamma = args.out(6, c, "outDgamma");
  float* dbeta = args.out(7, c, "outDbeta");

  std::vector<double> md(c), sdy(c), sdyx(c);
  for (int64_t j = 0; j < c; ++j) md[j] = mean[j];
  const double* mdp = md.data();
  // sum dy * (x - mean); multiplied by invStd afterwards.
  retort::channel_sums(rows, c, sdy.data(), sdyx.data(), [&](int64_t r0, int64_t r1, double* a1, double* a2) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* dr = dy + r * c;
      const float* xr = x + r * c;
#pragma omp simd
      for (int64_t j = 0; j < c; ++j) {
        const double d = dr[j];
        a1[j] += d;
        a2[j] += d * (double(xr[j]) - mdp[j]);
      }
    }
  });
  // dx = k * dy + kx * (x - mean) + k0 per channel.
  std::vector<double> k(c), kx(c), k0(c);
  for (int64_t j = 0; j < c; ++j) {
    const double iv = inv[j];
    const double dg = sdyx[j] * iv;
    dgamma[j] = float(dg);
    dbeta[j] = float(sdy[j]);
    const double g = double(gamma[j]) * iv;
    k[j] = g;
    kx[j] = -g * dg * iv / double(rows);
    k0[j] = -g * sdy[j] / double(rows);
  }
  const double* kp = k.data();
  const double* kxp = kx.data();
  const double* k0p = k0.data();
#pragma omp parallel for schedule(static) if (n > (int64_t{1} << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* dr = dy + r * c;
    const float* xr = x + r * c;
    float* o = dx + r * c;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) o[j] = float(kp[j] * double(dr[j]) + kxp[j] * (double(xr[j]) - mdp[j]) + k0p[j]);
  }
}
