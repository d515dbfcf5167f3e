// One fused pass of Adam / AdamW (Kingma & Ba, ICLR 2015; Loshchilov & Hutter, ICLR 2019) over a
// parameter tensor: reads p, g, m, v once and writes p', m', v'. The composite tfjs version makes ~12
// passes and 10 temporaries per variable. Matches torch.optim.Adam/AdamW (eps added after sqrt of
// the bias-corrected second moment). Args: p, g, m, v, outP, outM, outV, then scalars
// lr, beta1, beta2, eps, c1 = 1/(1-beta1^t), c2 = 1/(1-beta2^t), weightDecay, decoupled (0/1).
#include <cmath>

#include "common.h"

RETORT_KERNEL(RetortAdamUpdate) {
  // Outputs are fresh pool arrays (src/kernels/RetortAdamUpdate.ts), never p, m or v: no in-place form.
  const int64_t n = args.len(0, "p");
  const float* p = args.in(0, n, "p");
  const float* g = args.in(1, n, "g");
  const float* m = args.in(2, n, "m");
  const float* v = args.in(3, n, "v");
  float* op = args.out(4, n, "outP");
  float* om = args.out(5, n, "outM");
  float* ov = args.out(6, n, "outV");
  const float lr = float(args.num(7, "lr")), b1 = float(args.num(8, "beta1")), b2 = float(args.num(9, "beta2"));
  const float eps = float(args.num(10, "eps")), c1 = float(args.num(11, "c1")), c2 = float(args.num(12, "c2"));
  const float wd = float(args.num(13, "weightDecay"));
  const bool decoupled = args.count(14, "decoupled", 0, 1) != 0;
  const float decay = decoupled ? 1.f - lr * wd : 1.f;
  const float l2 = decoupled ? 0.f : wd;
#pragma omp parallel for simd if (n > 65536) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] + l2 * p[i];
    const float mi = b1 * m[i] + (1.f - b1) * gi;
    const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    om[i] = mi;
    ov[i] = vi;
    op[i] = p[i] * decay - lr * (mi * c1) / (std::sqrt(vi * c2) + eps);
  }
}
