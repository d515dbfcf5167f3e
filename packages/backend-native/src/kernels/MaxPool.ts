/** MaxPool (2-D, NHWC, float32) on oneDNN's pooling_max. */
import type { MaxPoolAttrs } from '@tensorflow/tfjs-core';
import { allF32, type NativeKernel } from './kernel.js';
import { isIdentityPool, poolGeometry, poolInfo } from './pool_util.js';

export const maxPool: NativeKernel = {
  kernelName: 'MaxPool',
  run({ inputs, attrs, backend, addon }) {
    const { x } = inputs;
    if (x === undefined || !allF32(x)) return null;
    const a = attrs as unknown as MaxPoolAttrs;
    const info = poolInfo(x, a.filterSize, a.strides, a.pad, a.dimRoundingMode);
    if (info === null || isIdentityPool(info)) return null;
    const geom = poolGeometry(info);
    const xv = backend.f32(x);
    if (geom === null || xv === null) return null;
    const out = backend.makeOutputF32(info.outShape);
    addon.MaxPool(xv, out.values, geom);
    return out.info;
  },
};
