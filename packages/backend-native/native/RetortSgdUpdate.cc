// One fused pass of SGD with momentum, dampening, nesterov and L2 weight decay, as torch.optim.SGD
// defines it (Sutskever et al., ICML 2013 for the nesterov form used there). Reads p, g, buf once,
// writes p', buf'. Args: p, g, buf, outP, outBuf, then scalars lr, momentum, dampening,
// weightDecay, nesterov (0/1), firstStep (0/1: buf starts as g, as in PyTorch).
#include "common.h"

RETORT_KERNEL(RetortSgdUpdate) {
  const size_t n = args.length(0);
  const float* p = args.f32(0, n);
  const float* g = args.f32(1, n);
  const float* b = args.f32(2, n);
  float* op = args.f32(3, n);
  float* ob = args.f32(4, n);
  const float lr = float(args.f64(5)), mom = float(args.f64(6)), damp = float(args.f64(7)), wd = float(args.f64(8));
  const bool nesterov = args.i64(9) != 0;
  const bool first = args.i64(10) != 0;
#pragma omp parallel for simd if (n > 65536) schedule(static)
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i] + wd * p[i];
    const float bi = first ? gi : mom * b[i] + (1.f - damp) * gi;
    ob[i] = bi;
    const float d = nesterov ? gi + mom * bi : bi;
    op[i] = p[i] - lr * d;
  }
}
