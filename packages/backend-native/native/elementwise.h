// Shared loops of the elementwise family: unary maps, broadcasting binary maps (Add, Sub, Multiply,
// ...), AddN and FusedBatchNorm. Each tfjs kernel keeps its own small native/<Kernel>.cc that passes
// its scalar function here, so a kernel's semantics (NaN rules, rounding) are stated in its own file.
//
// These kernels are memory bound; what matters is that the inner loops are contiguous and vectorize
// (-O3 at each x86-64 level the Makefile builds, never -march=native; no -ffast-math, so NaN and
// infinity behave as in JS) and that small tensors do
// not pay the OpenMP wake-up (kParallelMin).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "common.h"

namespace retort {

// Below this many output elements one thread is faster than waking the (passive) OpenMP workers.
constexpr int64_t kParallelMin = 32768;
// Broadcasting rank handled natively; src/kernels/binary.ts falls back to the JS kernel above it.
constexpr int kMaxBroadcastRank = 6;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// body(begin, end) over [0, n): in one call when `work` (elements touched) is below kParallelMin, else
// split evenly over the OpenMP threads. Small tensors stay out of OpenMP entirely: even a one-thread
// region (`if` clause false) costs ~3 us, more than a 64-element op.
template <class Body>
void parallel_range(int64_t n, int64_t work, Body body) {
  if (work <= kParallelMin) {
    body(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    body(n * t / nt, n * (t + 1) / nt);
  }
}

// ---- unary ----------------------------------------------------------------------------------
// Args: x, out (same length), then kernel-specific scalars read by the caller.
template <class F>
void unary_map(const Args& args, F f) {
  const int64_t n = args.len(0, "x");
  const float* x = args.in(0, n, "x");
  float* out = args.out(1, n, "out");  // disjoint from x, as the __restrict below assumes
  parallel_range(n, n, [x, out, f](int64_t begin, int64_t end) {
    const F g = f;  // a local copy: captured parameters (alpha) are not reloaded past the stores to out
    const float* __restrict xi = x;
    float* __restrict o = out;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) o[i] = g(xi[i]);
  });
}

// ---- binary with tfjs broadcasting ------------------------------------------------------------
// The broadcast is normalised once: both shapes are right-aligned to the output rank, output dims of
// size 1 are dropped and neighbouring dims where each operand is either present or broadcast alike are
// merged. What is left has at most kMaxBroadcastRank dims, the innermost is contiguous (stride 1) or
// broadcast (stride 0) for each operand, and the common cases become short: same shape -> [n] (1, 1);
// tensor op scalar -> [n] (1, 0); bias add [..., C] op [C] -> [rows, C] with b strides (0, 1);
// [N, C] op [N, 1] -> [N, C] with b strides (1, 0).
struct BroadcastPlan {
  int rank = 0;
  int64_t dims[kMaxBroadcastRank] = {};
  int64_t sa[kMaxBroadcastRank] = {};  // element strides of a per merged dim (0: broadcast)
  int64_t sb[kMaxBroadcastRank] = {};
  int64_t size = 1;                // output elements
  int64_t a_size = 1, b_size = 1;  // operand elements
};

// a_shape, b_shape: the operands' shapes (tfjs broadcasting rules). Throws ArgError if they are
// incompatible, a size is negative or a size (an operand's or the output's) exceeds kMaxElems. An empty
// output (size 0) gets no dims: there is nothing to loop over.
BroadcastPlan plan_broadcast(const std::vector<int64_t>& a_shape, const std::vector<int64_t>& b_shape);

// The plan of the geometry argument i: exactly [rankA, rankB, ...aShape, ...bShape], each rank in
// [0, kMaxBroadcastRank], each size in [0, kMaxElems].
BroadcastPlan broadcast_geometry(const Args& args, size_t i);

// out[j] = f(a[j * sa], b[j * sb]) for j < m, with (sa, sb) one of (1, 1), (1, 0), (0, 1): three
// loops so that each one vectorizes with the broadcast operand held in a register.
template <class F>
inline void binary_row(const float* __restrict a, int64_t sa, const float* __restrict b, int64_t sb,
                       float* __restrict out, int64_t m, F f) {
  if (sa != 0 && sb != 0) {
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) out[j] = f(a[j], b[j]);
  } else if (sb == 0) {
    const float bv = b[0];
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) out[j] = f(a[j], bv);
  } else {
    const float av = a[0];
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) out[j] = f(av, b[j]);
  }
}

// Args: a, b, out, geom = Int32Array [rankA, rankB, ...aShape, ...bShape] (the JS side reuses one array
// per length: allocating two shape arrays per call cost more than a small op). out has the broadcast shape.
template <class F>
void binary_map(const Args& args, F f) {
  // Every offset below stays inside a, b and out: the strides are row-major over each operand's own
  // sizes, whose products are the lengths checked here.
  const BroadcastPlan p = broadcast_geometry(args, 3);
  const float* a = args.in(0, p.a_size, "a");
  const float* b = args.in(1, p.b_size, "b");
  float* out = args.out(2, p.size, "out");
  if (p.size == 0) return;
  const int last = p.rank - 1;
  const int64_t inner = p.dims[last];
  const int64_t rows = p.size / inner;
  // Long rows are cut into chunks so that a same-shape op ([n], one row) still spreads over threads.
  constexpr int64_t kChunk = 16384;
  const int64_t per_row = (inner + kChunk - 1) / kChunk;
  parallel_range(rows * per_row, p.size, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      int64_t row = t / per_row;
      const int64_t start = (t - row * per_row) * kChunk;
      const int64_t len = std::min(kChunk, inner - start);
      float* o = out + row * inner + start;
      // Offsets of this row in a and b: unravel `row` over the outer merged dims.
      int64_t oa = 0, ob = 0;
      for (int d = last - 1; d > 0; --d) {
        const int64_t q = row / p.dims[d];
        const int64_t i = row - q * p.dims[d];
        oa += i * p.sa[d];
        ob += i * p.sb[d];
        row = q;
      }
      if (last > 0) {
        oa += row * p.sa[0];
        ob += row * p.sb[0];
      }
      const int64_t ia = p.sa[last], ib = p.sb[last];
      binary_row(a + oa + start * ia, ia, b + ob + start * ib, ib, o, len, f);
    }
  });
}

// ---- NaN- and signed-zero-exact Math.max / Math.min --------------------------------------------
// JS: a NaN operand gives NaN, and +0 is larger than -0. Comparisons alone get both wrong.
inline float js_max(float a, float b) {
  const float m = a > b ? a : b;
  const float z = std::signbit(a) ? b : a;  // a == b: only the zero signs can differ; prefer +0
  return (a != a) ? a : (a == b ? z : m);
}
inline float js_min(float a, float b) {
  const float m = a < b ? a : b;
  const float z = std::signbit(a) ? a : b;  // prefer -0
  return (a != a) ? a : (a == b ? z : m);
}

}  // namespace retort
