/** Tile as a native copy (broadcast gradients of batch-norm statistics use it). */
import type { TileAttrs } from '@tensorflow/tfjs-core';
import { allF32, int32s, isIntArray, type NativeKernel, sizeOf } from './kernel.js';

export const tile: NativeKernel = {
  kernelName: 'Tile',
  run({ inputs, attrs, backend, addon }) {
    const { x } = inputs;
    if (x === undefined || !allF32(x) || x.shape.length === 0 || x.shape.length > 6) return null;
    const { reps } = attrs as unknown as TileAttrs;
    // One whole, non-negative count per dim; anything else is left to the cpu kernel.
    if (!isIntArray(reps, x.shape.length, 0)) return null;
    const outShape = x.shape.map((d, i) => d * reps[i]!);
    const packedOut = int32s(outShape);
    if (packedOut === null || sizeOf(outShape) === 0) return null;
    const out = backend.makeOutputF32(outShape);
    addon.Tile(backend.f32(x)!, out.values, Int32Array.from(x.shape), packedOut);
    return out.info;
  },
};
