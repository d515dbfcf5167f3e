// tfjs ArgMax over one axis (float32 in, int32 out), with tfjs's rules: the first maximum wins, a NaN
// at index 0 gives 0 and later NaNs are skipped (a comparison with NaN is false).
// Args: x, out (Int32Array), shape, axis.
#include "reduce_common.h"

RETORT_KERNEL(ArgMax) {
  const auto dims = args.dims(2);
  const int64_t axis = args.i64(3);
  if (axis < 0 || axis >= int64_t(dims.size()))
    throw retort::ArgError("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(dims.size()));
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < int64_t(dims.size()); ++i) {
    if (i < axis) outer *= dims[size_t(i)];
    if (i > axis) inner *= dims[size_t(i)];
  }
  const int64_t R = dims[size_t(axis)];
  const float* x = args.f32(0, size_t(outer * R * inner));
  int32_t* y = args.i32(1, size_t(outer * inner));
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
