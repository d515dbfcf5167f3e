// Batched matrix product on oneDNN's matmul, shared by BatchMatMul and _FusedMatMul.
// tfjs hands both kernels rank-3 views: a [batchA, M, K] (or [batchA, K, M] with transposeA),
// b [batchB, K, N] (or [batchB, N, K] with transposeB), out [max(batchA, batchB), M, N]. Transposes
// are plain strides (format tag acb), so no operand is ever copied.
#pragma once
#include "common.h"

namespace retort {

struct MatMulGeom {
  int64_t batch_a, batch_b, m, n, k;
  bool ta, tb;
  int64_t bias_b, bias_m, bias_n;  // bias dims broadcast against [batch, M, N]; all 0: no bias

  // Reads and validates the 10-int geometry written by src/kernels/matmul_util.ts:
  // [batchA, batchB, M, N, K, transposeA, transposeB, biasB, biasM, biasN]. Sizes >= 1, flags 0/1,
  // batches equal or one of them 1 (what oneDNN broadcasts), and the bias either absent (all three 0)
  // or each dim 1 or the output's (batch, M, N). Element counts are checked products; the callers tie
  // each pointer to them, and matmul_run's descriptors (the folded 2-D form included) cover exactly
  // those counts.
  static MatMulGeom from(const Args& a, size_t i) {
    const auto g = a.ints(i, "geometry", 10);
    static const char* names[10] = {"batchA", "batchB", "M", "N", "K", "transposeA", "transposeB",
                                    "biasB",  "biasM",  "biasN"};
    const std::string at = arg_name(i, "geometry") + " ";
    for (size_t k = 0; k < 5; k++) in_range(g[k], 1, int64_t{1} << 30, at + names[k]);
    for (size_t k = 5; k < 7; k++) in_range(g[k], 0, 1, at + names[k]);
    MatMulGeom r{g[0], g[1], g[2], g[3], g[4], g[5] != 0, g[6] != 0, g[7], g[8], g[9]};
    if (r.batch_a != r.batch_b && r.batch_a != 1 && r.batch_b != 1)
      throw ArgError(at + "batchA " + std::to_string(r.batch_a) + " and batchB " + std::to_string(r.batch_b) +
                     " must be equal or one of them 1");
    const int64_t out_dims[3] = {r.batch(), r.m, r.n};
    const bool no_bias = r.bias_b == 0 && r.bias_m == 0 && r.bias_n == 0;
    for (size_t k = 0; k < 3 && !no_bias; k++) {
      const int64_t v = g[7 + k];
      if (v != 1 && v != out_dims[k])
        throw ArgError(at + names[7 + k] + " is " + std::to_string(v) + ", expected 1 or " +
                       std::to_string(out_dims[k]) + " (or all bias dims 0: no bias)");
    }
    r.a_n = prod({r.batch_a, r.m, r.k}, at + "a");
    r.b_n = prod({r.batch_b, r.k, r.n}, at + "b");
    r.out_n = prod({r.batch(), r.m, r.n}, at + "out");
    r.bias_n_elems = no_bias ? 0 : prod({r.bias_b, r.bias_m, r.bias_n}, at + "bias");
    return r;
  }
  int64_t batch() const { return batch_a > batch_b ? batch_a : batch_b; }
  bool has_bias() const { return bias_n != 0; }
  int64_t a_n = 0, b_n = 0, out_n = 0, bias_n_elems = 0;  // element counts, checked by from()
  int64_t a_size() const { return a_n; }
  int64_t b_size() const { return b_n; }
  int64_t out_size() const { return out_n; }
  // 0 when there is no bias (the JS side then passes an empty array).
  int64_t bias_size() const { return bias_n_elems; }
};

// out = a @ b (+ bias) (relu); out is fully overwritten.
void matmul_run(const MatMulGeom& g, const float* a, const float* b, const float* bias, bool relu, float* out);

}  // namespace retort
