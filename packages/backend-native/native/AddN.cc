// tfjs AddN: out = x0 + x1 + ... (same shapes), summed in float in input order from +0, exactly as
// the cpu kernel accumulates into its Float32Array. Args: out, x0, x1, ... (at most 31 inputs: the
// argument reader takes 32; src/kernels/AddN.ts continues longer lists by passing `out` back as x0,
// which gives the same sums since 0 + s = s).
#include <vector>

#include "elementwise.h"

RETORT_KERNEL(AddN) {
  const int64_t n = args.len(0, "out");
  // out may be x0 (the continuation above), and only as the very same array: a block of out is written
  // after x0's same block is read, so a shifted overlap would read sums of other blocks, or race.
  float* out = args.out(0, n, "out", 1);
  std::vector<const float*> xs;
  for (size_t i = 1; i < args.size(); ++i) xs.push_back(args.in(i, n, "x"));
  if (!xs.empty() && xs[0] != out && xs[0] < out + n && out < xs[0] + n)
    throw retort::ArgError(retort::arg_name(0, "out") + " overlaps argument 1 (x) without being the same array");
  // Blocks small enough to stay in L1 while every input is added in.
  constexpr int64_t kBlock = 2048;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  retort::parallel_range(blocks, n * int64_t(xs.size() + 1), [&](int64_t b0, int64_t b1) {
    float acc[kBlock];
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t start = blk * kBlock;
      const int64_t len = std::min(kBlock, n - start);
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) acc[j] = 0.f;
      for (const float* x : xs) {
        const float* xb = x + start;
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) acc[j] += xb[j];
      }
      float* ob = out + start;
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) ob[j] = acc[j];
    }
  });
}
