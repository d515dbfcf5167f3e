// tfjs Softmax over the last axis (float32), in tfjs's order of operations: m = max(row) (NaN
// propagates), e = exp(x - m), s = float(sum(e)) summed in double, out = e / s.
// Args: x, out, rows, cols.
#include "reduce_common.h"

RETORT_KERNEL(Softmax) {
  const int64_t rows = args.count(2, "rows"), cols = args.count(3, "cols", 1);
  const int64_t n = retort::prod({rows, cols}, "x");
  const float* x = args.in(0, n, "x");
  float* y = args.out(1, n, "out");
  // exp costs ~10x a sum per element: count it so that mid-sized batches use both cores.
  const int nt = retort::threads_for(rows * cols * 8);
  retort::parallel_for(rows, nt, [&](int64_t r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    const float m = retort::reduce_run<retort::ExtremeOp<true>>(xr, cols);
    for (int64_t j = 0; j < cols; ++j) yr[j] = std::exp(xr[j] - m);
    const float s = float(retort::reduce_run<retort::SumOp>(yr, cols));
    for (int64_t j = 0; j < cols; ++j) yr[j] /= s;
  });
}
