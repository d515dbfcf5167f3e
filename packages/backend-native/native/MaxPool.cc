// tfjs MaxPool (NHWC, 2-D, float32) on oneDNN's pooling_max. Args: x, out, geometry[14].
//
// tfjs cpu's pool() takes `v > best` from -Infinity over the cells inside the input, so NaN never
// wins and a window holding only -Infinity/NaN gives -Infinity. oneDNN agrees except for that last
// case: it starts from -FLT_MAX and returns -3.4e38 there. A check pass over the output patches
// those cells (it costs ~0.1 ms on [128,32,32,64] 2x2/2; a hand-written OpenMP pooling loop giving
// tfjs's answer directly was 20-30% slower than oneDNN's on that shape).
#include <omp.h>

#include <algorithm>
#include <limits>

#include "pool_common.h"

namespace {

constexpr int64_t kParallelMin = 32768;  // elements below which one thread is faster

// Recomputes, with tfjs's rule, every output cell that oneDNN left at -FLT_MAX (its start value):
// -FLT_MAX stays only if some cell of the window holds it; otherwise the window had no number.
void patch_empty_windows(const retort::PoolGeom& g, const float* x, float* y) {
  const float lowest = std::numeric_limits<float>::lowest();
  const int64_t n_out = g.dst_size();
  int found = 0;
#pragma omp parallel for simd reduction(| : found) if (n_out > kParallelMin)
  for (int64_t i = 0; i < n_out; ++i) found |= y[i] == lowest;
  if (!found) return;
  for (int64_t i = 0; i < n_out; ++i) {
    if (y[i] != lowest) continue;
    const int64_t c = i % g.c, ow = (i / g.c) % g.ow, oh = (i / (g.c * g.ow)) % g.oh, n = i / (g.c * g.ow * g.oh);
    const int64_t h0 = oh * g.sh - g.pt, w0 = ow * g.sw - g.pl;
    float best = -std::numeric_limits<float>::infinity();
    for (int64_t ih = std::max<int64_t>(0, h0); ih < std::min(g.h, h0 + g.kh); ++ih)
      for (int64_t iw = std::max<int64_t>(0, w0); iw < std::min(g.w, w0 + g.kw); ++iw) {
        const float v = x[((n * g.h + ih) * g.w + iw) * g.c + c];
        best = v > best ? v : best;
      }
    y[i] = best;
  }
}

}  // namespace

RETORT_KERNEL(MaxPool) {
  static retort::PrimitiveCache<retort::PoolFwdEntry> cache;
  auto g = retort::PoolGeom::from(args, 2);
  const float* x = args.in(0, g.src_size(), "x");
  float* y = args.out(1, g.dst_size(), "out");
  retort::pool_forward(cache, g, dnnl::algorithm::pooling_max, x, y);
  patch_empty_windows(g, x, y);
}
