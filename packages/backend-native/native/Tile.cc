// tfjs Tile: out[i] = x[i mod shape] per dimension. Args: x, out, shape[r], outShape[r].
#include "copy_common.h"

RETORT_KERNEL(Tile) {
  auto shape = args.shape(2, "shape", 1, retort::kMaxCopyRank);
  const size_t r = shape.size();
  auto oshape = args.shape(3, "outShape", r, r);
  for (size_t i = 0; i < r; i++) {
    // Each output dim repeats the input dim a whole number of times (the row copies rely on it).
    if (shape[i] == 0 ? oshape[i] != 0 : oshape[i] % shape[i] != 0)
      throw retort::ArgError(retort::arg_name(3, "outShape") + "[" + std::to_string(i) + "] = " +
                             std::to_string(oshape[i]) + " is not a multiple of shape[" + std::to_string(i) +
                             "] = " + std::to_string(shape[i]));
  }
  const int64_t out = retort::prod(oshape, "out");
  const float* x = args.in(0, retort::prod(shape, "x"), "x");
  float* y = args.out(1, out, "out");
  // From here every dim is >= 1 (an input dim of 0 makes an output dim 0), so the strides of x are
  // partial products of its checked size.
  if (out == 0) return;
  std::vector<int64_t> xs(r, 1);
  for (int64_t i = int64_t(r) - 2; i >= 0; i--) xs[size_t(i)] = xs[size_t(i) + 1] * shape[size_t(i) + 1];
  const int64_t L = oshape[r - 1], Lin = shape[r - 1];
  const int64_t rows = out / L;
#pragma omp parallel for schedule(static) if (out > 65536)
  for (int64_t row = 0; row < rows; row++) {
    int64_t rem = row, so = 0;
    for (int64_t i = int64_t(r) - 2; i >= 0; i--) {
      so += (rem % oshape[size_t(i)]) % shape[size_t(i)] * xs[size_t(i)];
      rem /= oshape[size_t(i)];
    }
    float* dst = y + row * L;
    if (Lin == 1) {
      const float v = x[so];
      for (int64_t j = 0; j < L; j++) dst[j] = v;
    } else {
      for (int64_t j = 0; j < L; j += Lin) std::memcpy(dst + j, x + so, sizeof(float) * size_t(Lin));
    }
  }
}
