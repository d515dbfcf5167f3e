// One fused pass of SGD with momentum, dampening, nesterov and L2 weight decay, as torch.optim.SGD
// defines it (Sutskever et al., ICML 2013 for the nesterov form used there). Reads p, g, buf once,
// writes p', buf'. Args: p, g, buf, outP, outBuf, then scalars lr, momentum, dampening,
// weightDecay, nesterov (0/1), firstStep (0/1: buf starts as g, as in PyTorch).
#include "common.h"

RETORT_KERNEL(RetortSgdUpdate) {
  // Outputs are fresh pool arrays (src/kernels/RetortSgdUpdate.ts), never p or buf: no in-place form.
  const int64_t n = args.len(0, "p");
  const float* p = args.in(0, n, "p");
  const float* g = args.in(1, n, "g");
  const float* b = args.in(2, n, "buf");
  float* op = args.out(3, n, "outP");
  float* ob = args.out(4, n, "outBuf");
  const float lr = float(args.num(5, "lr")), mom = float(args.num(6, "momentum"));
  const float damp = float(args.num(7, "dampening")), wd = float(args.num(8, "weightDecay"));
  const bool nesterov = args.count(9, "nesterov", 0, 1) != 0;
  const bool first = args.count(10, "firstStep", 0, 1) != 0;
#pragma omp parallel for simd if (n > 65536) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] + wd * p[i];
    const float bi = first ? gi : mom * b[i] + (1.f - damp) * gi;
    ob[i] = bi;
    const float d = nesterov ? gi + mom * bi : bi;
    op[i] = p[i] - lr * d;
  }
}
