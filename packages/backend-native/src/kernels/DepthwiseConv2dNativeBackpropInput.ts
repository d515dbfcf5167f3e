/** Gradient of DepthwiseConv2dNative with respect to its input, on oneDNN. */
import type { DepthwiseConv2dNativeBackpropInputAttrs } from '@tensorflow/tfjs-core';
import { convKernel, type Shape4 } from './conv_util.js';

export const depthwiseConv2dNativeBackpropInput = convKernel({
  kernelName: 'DepthwiseConv2dNativeBackpropInput',
  inputs: ['dy', 'filter'],
  depthwise: true,
  needsDilations: true,
  shapes: (_dy, f, a) => [
    (a as unknown as DepthwiseConv2dNativeBackpropInputAttrs).inputShape,
    f.shape as Shape4,
  ],
  outShape: (info) => info.inShape,
  entry: (addon) => addon.DepthwiseConv2dNativeBackpropInput,
});
