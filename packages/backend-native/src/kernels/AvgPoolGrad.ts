/**
 * AvgPoolGrad (2-D, NHWC, float32) on oneDNN. tfjs cpu scales every dy by 1 / (KH * KW), also at
 * 'same'-padded borders where the forward divided by fewer cells: oneDNN's
 * pooling_avg_include_padding backward computes exactly that.
 */
import type { AvgPoolGradAttrs } from '@tensorflow/tfjs-core';
import { allF32, type NativeKernel } from './kernel.js';
import { poolGeometry, poolInfo, sameShape } from './pool_util.js';

export const avgPoolGrad: NativeKernel = {
  kernelName: 'AvgPoolGrad',
  run({ inputs, attrs, backend, addon }) {
    const { dy, input } = inputs;
    if (dy === undefined || input === undefined || !allF32(dy, input)) return null;
    const a = attrs as unknown as AvgPoolGradAttrs;
    // No dimRoundingMode: tfjs's AvgPoolGrad attrs have none, and cpu computes the info without one.
    const info = poolInfo(input, a.filterSize, a.strides, a.pad);
    if (info === null || !sameShape(dy.shape, info.outShape)) return null;
    const geom = poolGeometry(info);
    const dyv = backend.f32(dy);
    if (geom === null || dyv === null) return null;
    const out = backend.makeOutputF32(info.inShape);
    addon.AvgPoolGrad(dyv, out.values, geom);
    return out.info;
  },
};
