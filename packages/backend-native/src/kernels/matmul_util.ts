/**
 * Shapes of BatchMatMul/_FusedMatMul as tfjs cpu computes them, packed in the 10-int layout
 * native/matmul_common.h reads: [batchA, batchB, M, N, K, transposeA, transposeB, biasB, biasM, biasN].
 */
import { broadcast_util } from '@tensorflow/tfjs-core';
import { sizeOf } from './kernel.js';

export interface MatMulPlan {
  batchA: number;
  batchB: number;
  m: number;
  n: number;
  k: number;
  /** Output shape as tfjs cpu makes it: broadcast outer dims, then [M, N]. */
  outShape: number[];
}

/**
 * The product's shapes, or null for what the native kernel leaves to JS: rank < 2, mismatched inner
 * dims (JS then throws tfjs's own error), empty operands, and batch layouts other than equal batches
 * or one side with batch 1. tfjs cpu flattens the outer dims of each side and indexes batch `i` as
 * `i % batchA` / `i % batchB`, which is a true broadcast only in those layouts.
 */
export function matMulPlan(
  aShape: readonly number[],
  bShape: readonly number[],
  transposeA: boolean,
  transposeB: boolean,
): MatMulPlan | null {
  const ra = aShape.length;
  const rb = bShape.length;
  if (ra < 2 || rb < 2) return null;
  const k = (transposeA ? aShape[ra - 2] : aShape[ra - 1]) ?? 0;
  const kb = (transposeB ? bShape[rb - 1] : bShape[rb - 2]) ?? 0;
  const m = (transposeA ? aShape[ra - 1] : aShape[ra - 2]) ?? 0;
  const n = (transposeB ? bShape[rb - 2] : bShape[rb - 1]) ?? 0;
  if (k !== kb || k === 0 || m === 0 || n === 0) return null;
  const outerA = aShape.slice(0, -2);
  const outerB = bShape.slice(0, -2);
  const batchA = sizeOf(outerA);
  const batchB = sizeOf(outerB);
  if (batchA === 0 || batchB === 0) return null;
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return null;
  let outer: number[];
  try {
    outer = broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  } catch {
    return null;
  }
  if (sizeOf(outer) !== Math.max(batchA, batchB)) return null;
  return { batchA, batchB, m, n, k, outShape: [...outer, m, n] };
}

/**
 * A bias's dims against the output viewed as [batch, M, N] ([1|batch, 1|M, 1|N]), or null when it
 * does not map onto that view: higher rank than the output (cpu's add would grow the shape) or outer
 * dims that are neither all 1 nor the output's own.
 */
export function biasDims(biasShape: readonly number[], plan: MatMulPlan): [number, number, number] | null {
  const out = plan.outShape;
  const r = biasShape.length;
  if (r > out.length) return null;
  const bn = r >= 1 ? biasShape[r - 1]! : 1;
  const bm = r >= 2 ? biasShape[r - 2]! : 1;
  if ((bn !== 1 && bn !== plan.n) || (bm !== 1 && bm !== plan.m)) return null;
  const outer = biasShape.slice(0, Math.max(0, r - 2));
  if (outer.every((d) => d === 1)) return [1, bm, bn];
  // Outer dims equal to all of the output's: they flatten the same way the batch does.
  const outOuter = out.slice(0, -2);
  if (outer.length === outOuter.length && outer.every((d, i) => d === outOuter[i])) {
    return [Math.max(plan.batchA, plan.batchB), bm, bn];
  }
  return null;
}

/** The geometry array of a plan (bias dims 0 when there is no bias). */
export function matMulGeometry(
  plan: MatMulPlan,
  transposeA: boolean,
  transposeB: boolean,
  bias: [number, number, number] | null,
): Int32Array {
  const [bb, bm, bn] = bias ?? [0, 0, 0];
  return Int32Array.from([
    plan.batchA,
    plan.batchB,
    plan.m,
    plan.n,
    plan.k,
    transposeA ? 1 : 0,
    transposeB ? 1 : 0,
    bb,
    bm,
    bn,
  ]);
}
