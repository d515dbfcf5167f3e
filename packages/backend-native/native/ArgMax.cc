// tfjs ArgMax over one axis (float32 in, int32 out), with tfjs's rules: the first maximum wins, a NaN
// at index 0 gives 0 and later NaNs are skipped (a comparison with NaN is false).
// Args: x, out (Int32Array), shape, axis.
#include "reduce_common.h"

RETORT_KERNEL(ArgMax) {
  const auto dims = args.shape(2, "shape");
  const int64_t rank = int64_t(dims.size());
  const int64_t axis = retort::axis_of(args.count(3, "axis", -rank, rank), rank, retort::arg_name(3, "axis"));
  // Empty x is left to the JS kernel: R = 0 has no first row to start from.
  const int64_t n = retort::prod(dims, retort::arg_name(2, "shape"));
  if (n == 0) throw retort::ArgError(retort::arg_name(2, "shape") + " is empty: empty inputs are not reduced natively");
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < rank; ++i) {
    if (i < axis) outer *= dims[size_t(i)];  // every dim >= 1, so partial products stay <= n
    if (i > axis) inner *= dims[size_t(i)];
  }
  // Indices are written as int32.
  const int64_t R = retort::in_range(dims[size_t(axis)], 1, INT32_MAX, retort::arg_name(2, "shape") + " at the axis");
  const float* x = args.in(0, retort::prod({outer, R, inner}, "x"), "x");
  const int64_t ny = retort::prod({outer, inner}, "out");
  int32_t* y = const_cast<int32_t*>(args.i32(1, ny, "out"));
  // The output is written while x is read: they must not share memory.
  const char *xb = reinterpret_cast<const char*>(x), *yb = reinterpret_cast<const char*>(y);
  if (ny > 0 && xb < yb + ny * int64_t(sizeof(int32_t)) && yb < xb + n * int64_t(sizeof(float)))
    throw retort::ArgError(retort::arg_name(1, "out") + " overlaps argument 0: outputs must be fresh buffers");
  // Work items are (outer, block of columns); each column scans its rows in order, so ties and NaNs
  // resolve exactly as in the sequential JS loop.
  constexpr int64_t kBlock = 512;
  const int64_t cb = std::min(inner, kBlock), nb = (inner + cb - 1) / cb;
  const int nt = retort::threads_for(outer * R * inner);
  retort::parallel_for(outer * nb, nt, [&](int64_t t) {
    const int64_t o = t / nb, c0 = (t % nb) * cb, w = std::min(cb, inner - c0);
    const float* xo = x + o * R * inner + c0;
    float best[kBlock];
    int32_t idx[kBlock];
    for (int64_t j = 0; j < w; ++j) {
      best[j] = xo[j];
      idx[j] = 0;
    }
    for (int64_t r = 1; r < R; ++r) {
      const float* row = xo + r * inner;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) {
        const bool gt = row[j] > best[j];
        best[j] = gt ? row[j] : best[j];
        idx[j] = gt ? int32_t(r) : idx[j];
      }
    }
    for (int64_t j = 0; j < w; ++j) y[o * inner + c0 + j] = idx[j];
  });
}
