/**
 * Glue shared by the reduction kernels (Sum, Mean, Max, Min, Prod): axis normalisation as tfjs does
 * it, the output shape (with keepDims), and the call into native/reduce_common.h, which merges dims
 * and picks the row, column or transposed strategy.
 */
import { type TensorInfo, util } from '@tensorflow/tfjs-core';
import type { NativeBackend } from '../backend.js';
import { allF32, type NativeKernelArgs, sizeOf } from './kernel.js';

/**
 * Storage of a non-empty float32 input, or null when the native path does not apply (a missing,
 * non-float32 or empty tensor: the cpu kernel then handles it, errors included).
 */
export function f32Input(backend: NativeBackend, t: TensorInfo | undefined): Float32Array | null {
  if (t === undefined || !allF32(t) || sizeOf(t.shape) === 0) return null;
  return backend.f32(t);
}

/** Kernel ids whose addon functions take (x, out, shape, axes). */
export type ReduceName = 'Sum' | 'Mean' | 'Max' | 'Min' | 'Prod';

/**
 * Reduces input `x` over `axis` (null or undefined: all axes; negative axes count from the end)
 * natively, or returns null (non-float32, empty tensor, repeated axes) so that the cpu kernel runs.
 */
export function nativeReduce(
  name: ReduceName,
  { inputs, backend, addon }: NativeKernelArgs,
  axis: number | number[] | null | undefined,
  keepDims: boolean,
): TensorInfo | null {
  const { x } = inputs;
  const values = f32Input(backend, x);
  // The addon takes shapes up to rank 8 (native/common.h kMaxRank).
  if (x === undefined || values === null || x.shape.length > 8) return null;
  const axes = util.parseAxisParam(axis ?? x.shape.map((_, i) => i), x.shape);
  if (new Set(axes).size !== axes.length) return null;
  const outShape: number[] = [];
  for (const [i, d] of x.shape.entries()) {
    if (!axes.includes(i)) outShape.push(d);
    else if (keepDims) outShape.push(1);
  }
  const out = backend.makeOutputF32(outShape);
  addon[name](values, out.values, Int32Array.from(x.shape), Int32Array.from(axes));
  return out.info;
}
