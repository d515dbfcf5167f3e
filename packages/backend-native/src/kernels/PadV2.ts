/** PadV2 (constant padding) as a native fill plus strided copy; ResNets pad before stride-2 convs. */
import type { PadV2Attrs } from '@tensorflow/tfjs-core';
import { allF32, int32s, isIntArray, type NativeKernel, sizeOf } from './kernel.js';

export const padV2: NativeKernel = {
  kernelName: 'PadV2',
  run({ inputs, attrs, backend, addon }) {
    const { x } = inputs;
    if (x === undefined || !allF32(x) || x.shape.length === 0 || x.shape.length > 6 || sizeOf(x.shape) === 0)
      return null;
    const { paddings, constantValue } = attrs as unknown as PadV2Attrs;
    // One [before, after] pair of whole numbers per dim, and a numeric fill; anything else (negative
    // paddings, which crop, included: the addon only pads) is left to the cpu kernel.
    if (!Array.isArray(paddings) || paddings.length !== x.shape.length || typeof constantValue !== 'number')
      return null;
    if (!paddings.every((p) => isIntArray(p, 2, 0))) return null;
    const before = int32s(paddings.map((p) => p[0]));
    const outShape = x.shape.map((d, i) => d + paddings[i]![0] + paddings[i]![1]);
    const packedOut = int32s(outShape);
    if (before === null || packedOut === null) return null;
    const out = backend.makeOutputF32(outShape);
    addon.PadV2(backend.f32(x)!, out.values, Int32Array.from(x.shape), before, packedOut, constantValue);
    return out.info;
  },
};
