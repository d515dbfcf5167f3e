/** DepthwiseConv2dNative (filter [KH, KW, C, M]) as a oneDNN grouped convolution with C groups. */
import { backend_util, type DepthwiseConv2dNativeAttrs } from '@tensorflow/tfjs-core';
import { convGeometry } from './conv_util.js';
import { allF32, type NativeKernel } from './kernel.js';

export const depthwiseConv2dNative: NativeKernel = {
  kernelName: 'DepthwiseConv2dNative',
  run({ inputs, attrs, backend, addon }) {
    const { x, filter } = inputs;
    if (x === undefined || filter === undefined || !allF32(x, filter)) return null;
    const a = attrs as unknown as DepthwiseConv2dNativeAttrs;
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      a.strides,
      a.dilations ?? 1,
      a.pad,
      a.dimRoundingMode,
      true,
      backend_util.convertConv2DDataFormat(a.dataFormat),
    );
    const geom = convGeometry(info, true);
    if (geom === null) return null;
    const out = backend.makeOutputF32(info.outShape);
    addon.DepthwiseConv2dNative(backend.f32(x)!, backend.f32(filter)!, out.values, geom);
    return out.info;
  },
};
