/** Slice as a native strided copy (the gradient of PadV2; tfjs's JS version walks element by element). */
import { type SliceAttrs, slice_util } from '@tensorflow/tfjs-core';
import { allF32, isIntArray, type NativeKernel, sizeOf } from './kernel.js';

export const slice: NativeKernel = {
  kernelName: 'Slice',
  run({ inputs, attrs, backend, addon }) {
    const { x } = inputs;
    if (x === undefined || !allF32(x) || x.shape.length === 0 || x.shape.length > 6) return null;
    const a = attrs as unknown as SliceAttrs;
    const rank = x.shape.length;
    const parsed = slice_util.parseSliceParams(x as never, a.begin, a.size);
    const begin = parsed[0]!;
    const size = parsed[1]!;
    // Only a box of whole numbers inside x (a fractional or huge begin, a negative size: the cpu
    // kernel serves the call, with its own checks and errors).
    if (!isIntArray(begin, rank, 0) || !isIntArray(size, rank, 0)) return null;
    if (begin.some((b, i) => b + size[i]! > x.shape[i]!) || sizeOf(size) === 0) return null;
    const out = backend.makeOutputF32(size);
    addon.Slice(
      backend.f32(x)!,
      out.values,
      Int32Array.from(x.shape),
      Int32Array.from(begin),
      Int32Array.from(size),
    );
    return out.info;
  },
};
