/**
 * MaxPoolGrad (2-D, NHWC, float32): dy goes to each window's first strict maximum of x, as in tfjs
 * cpu (the forward output tfjs also passes is not needed). An OpenMP loop, see native/MaxPoolGrad.cc.
 */
import type { MaxPoolGradAttrs } from '@tensorflow/tfjs-core';
import { allF32, type NativeKernel } from './kernel.js';
import { poolGeometry, poolInfo, sameShape } from './pool_util.js';

export const maxPoolGrad: NativeKernel = {
  kernelName: 'MaxPoolGrad',
  run({ inputs, attrs, backend, addon }) {
    const { dy, input } = inputs;
    if (dy === undefined || input === undefined || !allF32(dy, input)) return null;
    const a = attrs as unknown as MaxPoolGradAttrs;
    const info = poolInfo(input, a.filterSize, a.strides, a.pad, a.dimRoundingMode);
    if (info === null || !sameShape(dy.shape, info.outShape)) return null;
    // The native loop keeps argmax cells as int32 indices into one H x W image.
    if (info.inHeight * info.inWidth > 2 ** 31 - 1) return null;
    const geom = poolGeometry(info);
    const dyv = backend.f32(dy);
    const xv = backend.f32(input);
    if (geom === null || dyv === null || xv === null) return null;
    const out = backend.makeOutputF32(info.inShape);
    addon.MaxPoolGrad(dyv, xv, out.values, geom);
    return out.info;
  },
};
