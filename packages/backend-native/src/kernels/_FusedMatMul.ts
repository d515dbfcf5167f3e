/**
 * _FusedMatMul: a @ b (+ bias) then linear or relu, as one oneDNN matmul with bias and a relu
 * post-op. tfjs-layers' Dense layer runs through this kernel. Other activations, prelu weights and
 * biases that do not map onto [batch, M, N] (see matmul_util.ts) defer to the JS kernel.
 */
import type { _FusedMatMulAttrs } from '@tensorflow/tfjs-core';
import { allF32, type NativeKernel } from './kernel.js';
import { biasDims, matMulGeometry, matMulPlan } from './matmul_util.js';

const noBias: Float32Array = new Float32Array(0);

export const fusedMatMul: NativeKernel = {
  kernelName: '_FusedMatMul',
  run({ inputs, attrs, backend, addon }) {
    const { a, b, bias, preluActivationWeights } = inputs;
    if (a === undefined || b === undefined || !allF32(a, b, bias)) return null;
    if (preluActivationWeights !== undefined && preluActivationWeights !== null) return null;
    const { transposeA, transposeB, activation } = attrs as unknown as _FusedMatMulAttrs;
    const act = activation ?? 'linear';
    if (act !== 'linear' && act !== 'relu') return null;
    const plan = matMulPlan(a.shape, b.shape, transposeA, transposeB);
    const av = backend.f32(a);
    const bv = backend.f32(b);
    if (plan === null || av === null || bv === null) return null;
    let dims: [number, number, number] | null = null;
    let biasValues = noBias;
    if (bias !== undefined && bias !== null) {
      dims = biasDims(bias.shape, plan);
      const v = backend.f32(bias);
      if (dims === null || v === null) return null;
      biasValues = v;
    }
    const out = backend.makeOutputF32(plan.outShape);
    addon._FusedMatMul(
      av,
      bv,
      biasValues,
      out.values,
      matMulGeometry(plan, transposeA, transposeB, dims),
      act === 'relu' ? 1 : 0,
    );
    return out.info;
  },
};
