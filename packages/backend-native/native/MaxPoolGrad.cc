// tfjs MaxPoolGrad (NHWC, 2-D). Args: dy, x, dx, geometry[14].
//
// tfjs hands the backward pass dy and the forward's input x (and output y, unused here), but no
// argmax. oneDNN's max-pool backward needs the forward's workspace, so using it means re-running the
// forward with a workspace first. This loop finds each window's argmax from x and scatters dy in
// one pass instead. [128,32,32,64] 2x2/2, 2 threads, median: this loop 1.8-1.9 ms, oneDNN forward
// (workspace) + backward 2.0-2.6 ms; [128,16,16,32]: 0.18-0.21 vs 0.18-0.25 ms.
//
// Semantics follow tfjs cpu (maxPoolPositions + MaxPoolGrad): the winner is the first cell, in
// row-major window order, that is strictly greater than all before it, starting from -Infinity. So
// on ties the earliest cell wins, NaN never wins, and a window of only -Infinity/NaN passes no
// gradient at all. Where windows overlap, a cell sums the dy of every window it won, in (oh, ow) order
// as tfjs does.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "pool_common.h"

namespace {

// Channels per task: tasks are (image, channel block) pairs, which write disjoint parts of dx even
// where windows overlap, and still give a batch-1 input some parallelism.
constexpr int64_t kCB = 64;
// Channels per inner step: one AVX-512 register (two AVX2 ones). GCC vector types keep the running
// max and argmax in registers across a window; plain arrays with `#pragma omp simd` were if-converted
// into masked stores to the stack, whose reloads stall (measured 2x slower than oneDNN's pair).
constexpr int64_t kV = 16;
typedef float vf __attribute__((vector_size(kV * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(kV * sizeof(int32_t))));
// Below this many input elements the loop runs on one thread: waking OpenMP costs more.
constexpr int64_t kParallelMin = 32768;

struct Window {
  int64_t hs, he, ws, we;  // clipped to the input
};

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

// One window over kV channels (w < kV: the last channels of a block, read and written one by one).
// Finds the argmax cell per channel, then writes (disjoint windows) or adds (overlapping) dy there.
inline void window_step(const retort::PoolGeom& g, const Window& win, const float* __restrict xn,
                        float* __restrict dxn, const float* __restrict dyp, bool disjoint, int64_t w) {
  const float kNegInf = -std::numeric_limits<float>::infinity();
  vf best = vf{} + kNegInf;  // scalar operands broadcast over GCC vectors
  vi pos = vi{} - 1;
  for (int64_t ih = win.hs; ih < win.he; ++ih)
    for (int64_t iw = win.ws; iw < win.we; ++iw) {
      const float* xp = xn + (ih * g.w + iw) * g.c;
      vf v;
      if (w == kV) {
        v = load(xp);
      } else {
        v = vf{} + kNegInf;  // -Inf never wins, so absent channels stay put
        for (int64_t c = 0; c < w; ++c) v[c] = xp[c];
      }
      const vi gt = v > best;
      best = gt ? v : best;
      pos = gt ? vi{} + int32_t(ih * g.w + iw) : pos;
    }
  const vf d = w == kV ? load(dyp) : vf{};
  for (int64_t ih = win.hs; ih < win.he; ++ih)
    for (int64_t iw = win.ws; iw < win.we; ++iw) {
      float* dxp = dxn + (ih * g.w + iw) * g.c;
      const vi hit = pos == int32_t(ih * g.w + iw);
      if (w == kV) {
        const vf r = hit ? d : vf{};
        store(dxp, disjoint ? r : load(dxp) + r);
      } else {
        for (int64_t c = 0; c < w; ++c) {
          const float r = hit[c] ? dyp[c] : 0.f;
          dxp[c] = disjoint ? r : dxp[c] + r;
        }
      }
    }
}

void maxpool_grad(const retort::PoolGeom& g, const float* __restrict dy, const float* __restrict x,
                  float* __restrict dx) {
  const int64_t nb = (g.c + kCB - 1) / kCB;
  const int64_t tasks = g.n * nb;
  // Windows that neither overlap nor leave gaps inside their rows/cols let every covered cell be
  // written once ('=' instead of zero-fill then '+='), which saves a full pass over dx.
  const bool disjoint = g.sh >= g.kh && g.sw >= g.kw;
  // For disjoint windows: which input rows/cols some window covers; the rest are zeroed up front.
  std::vector<char> row_cov(size_t(g.h), 0), col_cov(size_t(g.w), 0);
  for (int64_t o = 0; o < g.oh; ++o)
    for (int64_t k = 0; k < g.kh; ++k) {
      const int64_t i = o * g.sh - g.pt + k;
      if (i >= 0 && i < g.h) row_cov[size_t(i)] = 1;
    }
  for (int64_t o = 0; o < g.ow; ++o)
    for (int64_t k = 0; k < g.kw; ++k) {
      const int64_t i = o * g.sw - g.pl + k;
      if (i >= 0 && i < g.w) col_cov[size_t(i)] = 1;
    }

#pragma omp parallel for schedule(static) if (g.src_size() > kParallelMin)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t n = t / nb;
    const int64_t c0 = (t % nb) * kCB;
    const int64_t cl = std::min(kCB, g.c - c0);
    const float* xn = x + n * g.h * g.w * g.c + c0;
    float* dxn = dx + n * g.h * g.w * g.c + c0;
    const float* dyn = dy + n * g.oh * g.ow * g.c + c0;

    for (int64_t ih = 0; ih < g.h; ++ih)
      for (int64_t iw = 0; iw < g.w; ++iw)
        if (!disjoint || !row_cov[size_t(ih)] || !col_cov[size_t(iw)])
          std::memset(dxn + (ih * g.w + iw) * g.c, 0, size_t(cl) * sizeof(float));

    for (int64_t oh = 0; oh < g.oh; ++oh) {
      const int64_t h0 = oh * g.sh - g.pt;
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        const int64_t w0 = ow * g.sw - g.pl;
        const Window win{std::max<int64_t>(0, h0), std::min(g.h, h0 + g.kh), std::max<int64_t>(0, w0),
                         std::min(g.w, w0 + g.kw)};
        const float* dyp = dyn + (oh * g.ow + ow) * g.c;
        int64_t c = 0;
        for (; c + kV <= cl; c += kV) window_step(g, win, xn + c, dxn + c, dyp + c, disjoint, kV);
        if (c < cl) window_step(g, win, xn + c, dxn + c, dyp + c, disjoint, cl - c);
      }
    }
  }
}

}  // namespace

RETORT_KERNEL(MaxPoolGrad) {
  auto g = retort::PoolGeom::from(args, 3);
  // window_step keeps each channel's argmax as an int32 cell index ih * W + iw.
  retort::in_range(retort::prod({g.h, g.w}, "H*W"), 0, INT32_MAX, retort::arg_name(3, "geometry") + " H*W");
  const float* dy = args.in(0, g.dst_size(), "dy");
  const float* x = args.in(1, g.src_size(), "x");
  float* dx = args.out(2, g.src_size(), "dx");
  maxpool_grad(g, dy, x, dx);
}
