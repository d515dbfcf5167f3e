/**
 * Batch-norm folding for inference (Jacob et al., CVPR 2018, section 3.2): a BN after a conv,
 * y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta, is the same conv with
 * W' = W * gamma / sqrt(var + eps) (per output channel) and b' = (b - mean) * gamma / sqrt(var + eps)
 * + beta. Quantization then sees one conv with a bias instead of a conv and an elementwise op.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface BnParams {
  gamma: Float32Array;
  beta: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  epsilon: number;
}

/** Folds BN into a kernel whose last axis is the output channel (HWIO conv, [in, out] dense). */
export function foldBn(
  kernel: tf.Tensor,
  bias: tf.Tensor | null,
  bn: BnParams,
): { kernel: tf.Tensor; bias: tf.Tensor } {
  const c = kernel.shape[kernel.rank - 1]!;
  if (bn.gamma.length !== c)
    throw new Error(`foldBn: BN has ${bn.gamma.length} channels, the kernel ${c} outputs`);
  const k = new Float32Array(c);
  const b = new Float32Array(c);
  const b0 = bias ? bias.dataSync() : new Float32Array(c);
  for (let j = 0; j < c; j++) {
    const s = bn.gamma[j]! / Math.sqrt(bn.variance[j]! + bn.epsilon);
    k[j] = s;
    b[j] = (b0[j]! - bn.mean[j]!) * s + bn.beta[j]!;
  }
  return { kernel: tf.tidy(() => tf.mul(kernel, tf.tensor1d(k))), bias: tf.tensor1d(b) };
}
