/** Gradient of DepthwiseConv2dNative with respect to its filter ([KH, KW, C, M]), on oneDNN. */
import { backend_util, type DepthwiseConv2dNativeBackpropFilterAttrs } from '@tensorflow/tfjs-core';
import { convGeometry } from './conv_util.js';
import { allF32, type NativeKernel } from './kernel.js';

export const depthwiseConv2dNativeBackpropFilter: NativeKernel = {
  kernelName: 'DepthwiseConv2dNativeBackpropFilter',
  run({ inputs, attrs, backend, addon }) {
    const { x, dy } = inputs;
    if (x === undefined || dy === undefined || !allF32(x, dy)) return null;
    const a = attrs as unknown as DepthwiseConv2dNativeBackpropFilterAttrs;
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      a.filterShape,
      a.strides,
      a.dilations,
      a.pad,
      a.dimRoundingMode,
      true,
    );
    const geom = convGeometry(info, true);
    if (geom === null) return null;
    const out = backend.makeOutputF32(a.filterShape);
    addon.DepthwiseConv2dNativeBackpropFilter(backend.f32(x)!, backend.f32(dy)!, out.values, geom);
    return out.info;
  },
};
