/** Transpose of any rank (float32) natively: tiled 2-D core, strided outer loops (native/Transpose.cc). */
import type { TransposeAttrs } from '@tensorflow/tfjs-core';
import { isIntArray, type NativeKernel } from './kernel.js';
import { f32Input } from './reduce_util.js';

export const transpose: NativeKernel = {
  kernelName: 'Transpose',
  run({ inputs, attrs, backend, addon }) {
    const { x } = inputs;
    const { perm } = attrs as unknown as TransposeAttrs;
    const values = f32Input(backend, x);
    // The addon takes shapes up to rank 8 (native/common.h kMaxRank) and only true permutations (a
    // missing perm included, the cpu kernel serves the rest).
    if (x === undefined || values === null || x.shape.length > 8) return null;
    const rank = x.shape.length;
    if (!isIntArray(perm, rank, 0) || perm.some((p) => p >= rank) || new Set(perm).size !== rank) return null;
    const out = backend.makeOutputF32(perm.map((p) => x.shape[p] ?? 0));
    addon.Transpose(values, out.values, Int32Array.from(x.shape), Int32Array.from(perm));
    return out.info;
  },
};
