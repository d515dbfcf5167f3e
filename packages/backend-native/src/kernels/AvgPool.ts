/**
 * AvgPool (2-D, NHWC, float32) on oneDNN. tfjs divides by the number of cells inside the input, so
 * the native side uses pooling_avg_exclude_padding.
 */
import type { AvgPoolAttrs } from '@tensorflow/tfjs-core';
import { allF32, type NativeKernel } from './kernel.js';
import { isIdentityPool, poolGeometry, poolInfo } from './pool_util.js';

export const avgPool: NativeKernel = {
  kernelName: 'AvgPool',
  run({ inputs, attrs, backend, addon }) {
    const { x } = inputs;
    if (x === undefined || !allF32(x)) return null;
    const a = attrs as unknown as AvgPoolAttrs;
    const info = poolInfo(x, a.filterSize, a.strides, a.pad, a.dimRoundingMode);
    if (info === null || isIdentityPool(info)) return null;
    const geom = poolGeometry(info);
    const xv = backend.f32(x);
    if (geom === null || xv === null) return null;
    const out = backend.makeOutputF32(info.outShape);
    addon.AvgPool(xv, out.values, geom);
    return out.info;
  },
};
