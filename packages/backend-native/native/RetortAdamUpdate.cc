// One fused pass of Adam / AdamW (Kingma & Ba, ICLR 2015; Loshchilov & Hutter, ICLR 2019) over a
// parameter tensor: reads p, g, m, v once and writes p', m', v'. The composite tfjs version makes ~12
// passes and 10 temporaries per variable. Matches torch.optim.Adam/AdamW (eps added after sqrt of
// the bias-corrected second moment). Args: p, g, m, v, outP, outM, outV, then scalars
// lr, beta1, beta2, eps, c1 = 1/(1-beta1^t), c2 = 1/(1-beta2^t), weightDecay, decoupled (0/1).
#include <cmath>

#include "common.h"

RETORT_KERNEL(RetortAdamUpdate) {
  const size_t n = args.length(0);
  const float* p = args.f32(0, n);
  const float* g = args.f32(1, n);
  const float* m = args.f32(2, n);
  const float* v = args.f32(3, n);
  float* op = args.f32(4, n);
  float* om = args.f32(5, n);
  float* ov = args.f32(6, n);
  const float lr = float(args.f64(7)), b1 = float(args.f64(8)), b2 = float(args.f64(9)), eps = float(args.f64(10));
  const float c1 = float(args.f64(11)), c2 = float(args.f64(12)), wd = float(args.f64(13));
  const bool decoupled = args.i64(14) != 0;
  const float decay = decoupled ? 1.f - lr * wd : 1.f;
  const float l2 = decoupled ? 0.f : wd;
#pragma omp parallel for simd if (n > 65536) schedule(static)
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i] + l2 * p[i];
    const float mi = b1 * m[i] + (1.f - b1) * gi;
    const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    om[i] = mi;
    ov[i] = vi;
    op[i] = p[i] * decay - lr * (mi * c1) / (std::sqrt(vi * c2) + eps);
  }
}
