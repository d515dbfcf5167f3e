/**
 * BatchMatMul on oneDNN matmul, with transposes as strides (no copies). The gradients of dense
 * layers (_FusedMatMul's custom gradient) run through this kernel.
 */
import type { BatchMatMulAttrs } from '@tensorflow/tfjs-core';
import { allF32, type NativeKernel } from './kernel.js';
import { matMulGeometry, matMulPlan } from './matmul_util.js';

export const batchMatMul: NativeKernel = {
  kernelName: 'BatchMatMul',
  run({ inputs, attrs, backend, addon }) {
    const { a, b } = inputs;
    if (a === undefined || b === undefined || !allF32(a, b)) return null;
    const { transposeA, transposeB } = attrs as unknown as BatchMatMulAttrs;
    const plan = matMulPlan(a.shape, b.shape, transposeA, transposeB);
    const av = backend.f32(a);
    const bv = backend.f32(b);
    if (plan === null || av === null || bv === null) return null;
    const out = backend.makeOutputF32(plan.outShape);
    addon.BatchMatMul(av, bv, out.values, matMulGeometry(plan, transposeA, transposeB, null));
    return out.info;
  },
};
