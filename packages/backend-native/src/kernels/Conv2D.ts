/** Conv2D (NHWC x, HWIO filter) on oneDNN. */
import { backend_util, type Conv2DAttrs } from '@tensorflow/tfjs-core';
import { convGeometry } from './conv_util.js';
import { allF32, type NativeKernel } from './kernel.js';

export const conv2D: NativeKernel = {
  kernelName: 'Conv2D',
  run({ inputs, attrs, backend, addon }) {
    const { x, filter } = inputs;
    if (x === undefined || filter === undefined || !allF32(x, filter)) return null;
    const a = attrs as unknown as Conv2DAttrs;
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      a.strides,
      a.dilations,
      a.pad,
      a.dimRoundingMode,
      false,
      backend_util.convertConv2DDataFormat(a.dataFormat),
    );
    const geom = convGeometry(info, false);
    if (geom === null) return null;
    const out = backend.makeOutputF32(info.outShape);
    addon.Conv2D(backend.f32(x)!, backend.f32(filter)!, out.values, geom);
    return out.info;
  },
};
