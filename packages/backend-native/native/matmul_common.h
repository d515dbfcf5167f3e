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

  // Reads the 10-int geometry written by src/kernels/matmul_util.ts:
  // [batchA, batchB, M, N, K, transposeA, transposeB, biasB, biasM, biasN].
  static MatMulGeom from(const Args& a, size_t i) {
    if (a.length(i) != 10) throw ArgError("matmul geometry must have 10 ints");
    const int32_t* g = a.i32(i);
    MatMulGeom r{g[0], g[1], g[2], g[3], g[4], g[5] != 0, g[6] != 0, g[7], g[8], g[9]};
    if (r.batch_a != r.batch_b && r.batch_a != 1 && r.batch_b != 1)
      throw ArgError("matmul batches must be equal or 1");
    return r;
  }
  int64_t batch() const { return batch_a > batch_b ? batch_a : batch_b; }
  bool has_bias() const { return bias_n != 0; }
  size_t a_size() const { return size_t(batch_a * m * k); }
  size_t b_size() const { return size_t(batch_b * k * n); }
  size_t out_size() const { return size_t(batch() * m * n); }
  size_t bias_size() const { return size_t(bias_b * bias_m * bias_n); }
};

// out = a @ b (+ bias) (relu); out is fully overwritten.
void matmul_run(const MatMulGeom& g, const float* a, const float* b, const float* bias, bool relu, float* out);

}  // namespace retort
