// Shared machinery of the reduction family (Sum, Mean, Max, Min, Prod, ArgMax, Softmax) and Transpose.
// A reduction is normalised once (size-1 dims dropped, neighbouring dims of the same kind merged) into
// [outer, R, inner]: R reduced, outer and inner kept. Reduced axes that do not form one block are
// transposed into [kept, reduced] first, as tfjs's cpu kernels do. Sums accumulate in double so that
// long reductions (the bias gradient sums 131072 rows) agree with tfjs, which sums in JS doubles.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

#include "common.h"

namespace retort {

// A reduction in normalised form; `perm`/`dims` are set only when a transpose must come first.
struct ReducePlan {
  int64_t outer = 1, r = 1, inner = 1;
  std::vector<int64_t> dims, perm;  // merged input dims and the permutation to [kept..., reduced...]
  bool needs_transpose() const { return !perm.empty(); }
};

// dims: input shape, every dim >= 1; axes: reduced axes, in [0, rank) and distinct (or an ArgError).
ReducePlan plan_reduce(const std::vector<int64_t>& dims, const std::vector<int64_t>& axes);

// y = x transposed (output dim i is input dim perm[i]); any rank, f32 bits copied as they are. x and y
// hold prod(dims) elements; perm must be a permutation of 0..rank-1 (or an ArgError).
void transpose_f32(const float* x, float* y, const std::vector<int64_t>& dims, const std::vector<int64_t>& perm);

// Threads worth waking for `work` elements: 1 below a threshold where waking passive OpenMP workers
// costs more than the loop itself.
int threads_for(int64_t work);

// f(i) for i in [0, n) on nt threads, statically split. With nt == 1 it stays out of OpenMP: even a
// one-thread parallel region costs microseconds, more than the small reductions of a classifier head.
template <class F>
void parallel_for(int64_t n, int nt, F&& f) {
  if (nt <= 1) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// ---- operations: Acc accumulator type; step folds one element, merge folds two partials --------
struct SumOp {
  using Acc = double;
  static Acc init() { return 0.0; }
  static Acc step(Acc a, float x) { return a + x; }
  static Acc merge(Acc a, Acc b) { return a + b; }
  static float fin(Acc a, int64_t) { return float(a); }
};

// Max/Min with tfjs's NaN rule: a NaN anywhere makes the result NaN.
template <bool kMax>
struct ExtremeOp {
  using Acc = float;
  static Acc init() { return kMax ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity(); }
  static Acc step(Acc a, float x) { return ((kMax ? x > a : x < a) | (x != x)) ? x : a; }
  static Acc merge(Acc a, Acc b) { return step(a, b); }
  static float fin(Acc a, int64_t) { return a; }
};

// Folds a contiguous run in independent lanes (four 512-bit registers' worth): the compiler
// vectorises it, four chains hide the add/compare latency, and interleaved partial sums also shorten
// the rounding chain.
template <class Op>
typename Op::Acc reduce_run(const float* x, int64_t n) {
  using Acc = typename Op::Acc;
  constexpr int kLanes = 4 * 64 / int(sizeof(Acc));
  if (n < 2 * kLanes) {  // short rows (a classifier's 10 logits): setting up the lanes costs more
    Acc a = Op::init();
    for (int64_t i = 0; i < n; ++i) a = Op::step(a, x[i]);
    return a;
  }
  Acc lanes[kLanes];
  for (auto& l : lanes) l = Op::init();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] = Op::step(lanes[l], x[i + l]);
  Acc a = Op::init();
  for (auto l : lanes) a = Op::merge(a, l);
  for (; i < n; ++i) a = Op::step(a, x[i]);
  return a;
}

// Folds rows [r0, r1) of a [R, inner] block, columns [c0, c0 + w), into acc[0..w). Four rows per pass
// so the accumulators are loaded and stored once per four rows; each column still folds in row order.
template <class Op>
void reduce_rows(const float* x, int64_t r0, int64_t r1, int64_t inner, int64_t c0, int64_t w,
                 typename Op::Acc* acc) {
  if (inner == 1) {
    acc[0] = Op::merge(acc[0], reduce_run<Op>(x + r0, r1 - r0));
    return;
  }
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    const float* a = x + r * inner + c0;
    const float* b = a + inner;
    const float* c = b + inner;
    const float* d = c + inner;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j)
      acc[j] = Op::step(Op::step(Op::step(Op::step(acc[j], a[j]), b[j]), c[j]), d[j]);
  }
  for (; r < r1; ++r) {
    const float* a = x + r * inner + c0;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) acc[j] = Op::step(acc[j], a[j]);
  }
}

// y[o, i] = fold over r of x[o, r, i]. Work items are (outer, column block); when there are fewer
// of them than threads (a bias gradient is one [R, 64] block) R is split as well, each chunk folds
// into its own partials, and the partials are merged in chunk order.
template <class Op>
void reduce_3d(const float* x, float* y, int64_t outer, int64_t R, int64_t inner) {
  using Acc = typename Op::Acc;
  constexpr int64_t kBlock = 512;  // accumulators of one work item: 4 KiB of doubles, stays in L1
  const int64_t cb = std::min(inner, kBlock);
  const int64_t nb = (inner + cb - 1) / cb;
  const int64_t items = outer * nb;
  const int nt = threads_for(outer * R * inner);
  const int64_t n_red = R;
  if (items >= nt || R < 2) {
    parallel_for(items, nt, [&](int64_t t) {
      const int64_t o = t / nb, c0 = (t % nb) * cb, w = std::min(cb, inner - c0);
      Acc acc[kBlock];
      for (int64_t j = 0; j < w; ++j) acc[j] = Op::init();
      reduce_rows<Op>(x + o * R * inner, 0, R, inner, c0, w, acc);
      for (int64_t j = 0; j < w; ++j) y[o * inner + c0 + j] = Op::fin(acc[j], n_red);
    });
    return;
  }
  const int64_t chunks = std::min<int64_t>(R, (nt + items - 1) / items);
  std::vector<Acc> part(size_t(items * chunks * cb), Op::init());
  parallel_for(items * chunks, nt, [&](int64_t t) {
    const int64_t item = t / chunks, k = t % chunks;
    const int64_t o = item / nb, c0 = (item % nb) * cb, w = std::min(cb, inner - c0);
    reduce_rows<Op>(x + o * R * inner, R * k / chunks, R * (k + 1) / chunks, inner, c0, w, part.data() + t * cb);
  });
  for (int64_t item = 0; item < items; ++item) {
    const int64_t o = item / nb, c0 = (item % nb) * cb, w = std::min(cb, inner - c0);
    const Acc* p = part.data() + item * chunks * cb;
    for (int64_t j = 0; j < w; ++j) {
      Acc a = p[j];
      for (int64_t k = 1; k < chunks; ++k) a = Op::merge(a, p[k * cb + j]);
      y[o * inner + c0 + j] = Op::fin(a, n_red);
    }
  }
}

// Entry shared by the reduction kernels. Args: x, out, shape (Int32Array), axes (Int32Array): axes in
// [0, rank), distinct (plan_reduce). x must not be empty (the JS side leaves empty tensors to tfjs's
// cpu kernels): every dim is then >= 1, so each merged dim of the plan is at most x's checked size.
template <class Op>
void run_reduce(const Args& args) {
  const auto dims = args.shape(2, "shape");
  const auto raw = args.ints(3, "axes");
  const int64_t n = prod(dims, arg_name(2, "shape"));
  if (n == 0) throw ArgError(arg_name(2, "shape") + " is empty: empty inputs are not reduced natively");
  std::vector<int64_t> axes(raw.size());
  for (size_t k = 0; k < raw.size(); ++k)
    axes[k] = in_range(raw[k], 0, int64_t(dims.size()) - 1, arg_name(3, "axes") + "[" + std::to_string(k) + "]");
  const float* x = args.in(0, n, "x");
  const ReducePlan p = plan_reduce(dims, axes);
  // reduce_3d indexes x as [outer, r, inner]: the split must cover x exactly.
  if (prod({p.outer, p.r, p.inner}, "plan") != n) throw ArgError("reduction plan does not match the input size");
  float* y = args.out(1, prod({p.outer, p.inner}, "out"), "out");
  if (p.needs_transpose()) {
    // Scratch slot 5 is this family's; kernels run one at a time, so it is never in use twice.
    float* t = scratch(5, size_t(n));
    transpose_f32(x, t, p.dims, p.perm);
    x = t;
  }
  reduce_3d<Op>(x, y, p.outer, p.r, p.inner);
}

}  // namespace retort
