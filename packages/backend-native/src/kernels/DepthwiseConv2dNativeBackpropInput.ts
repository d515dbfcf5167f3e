/** Gradient of DepthwiseConv2dNative with respect to its input, on oneDNN. */
import { backend_util, type DepthwiseConv2dNativeBackpropInputAttrs } from '@tensorflow/tfjs-core';
import { convGeometry } from './conv_util.js';
import { allF32, type NativeKernel } from './kernel.js';

export const depthwiseConv2dNativeBackpropInput: NativeKernel = {
  kernelName: 'DepthwiseConv2dNativeBackpropInput',
  run({ inputs, attrs, backend, addon }) {
    const { dy, filter } = inputs;
    if (dy === undefined || filter === undefined || !allF32(dy, filter)) return null;
    const a = attrs as unknown as DepthwiseConv2dNativeBackpropInputAttrs;
    const info = backend_util.computeConv2DInfo(
      a.inputShape,
      filter.shape as [number, number, number, number],
      a.strides,
      a.dilations,
      a.pad,
      a.dimRoundingMode,
      true,
    );
    const geom = convGeometry(info, true);
    if (geom === null) return null;
    const out = backend.makeOutputF32(info.inShape);
    addon.DepthwiseConv2dNativeBackpropInput(backend.f32(dy)!, backend.f32(filter)!, out.values, geom);
    return out.info;
  },
};
