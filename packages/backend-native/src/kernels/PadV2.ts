/** PadV2 (constant padding) as a native fill plus strided copy; ResNets pad before stride-2 convs. */
import type { PadV2Attrs } from '@tensorflow/tfjs-core';
import { allF32, type NativeKernel, sizeOf } from './kernel.js';

export const padV2: NativeKernel = {
  kernelName: 'PadV2',
  run({ inputs, attrs, backend, addon }) {
    const { x } = inputs;
    if (x === undefined || !allF32(x) || x.shape.length === 0 || x.shape.length > 6 || sizeOf(x.shape) === 0)
      return null;
    const a = attrs as unknown as PadV2Attrs;
    const before = a.paddings.map((p) => p[0]);
    const outShape = x.shape.map((d, i) => d + a.paddings[i]![0] + a.paddings[i]![1]);
    const out = backend.makeOutputF32(outShape);
    addon.PadV2(
      backend.f32(x)!,
      out.values,
      Int32Array.from(x.shape),
      Int32Array.from(before),
      Int32Array.from(outShape),
      a.constantValue,
    );
    return out.info;
  },
};
