/** Gradient of DepthwiseConv2dNative with respect to its filter ([KH, KW, C, M]), on oneDNN. */
import type { DepthwiseConv2dNativeBackpropFilterAttrs } from '@tensorflow/tfjs-core';
import { convKernel, type Shape4 } from './conv_util.js';

export const depthwiseConv2dNativeBackpropFilter = convKernel({
  kernelName: 'DepthwiseConv2dNativeBackpropFilter',
  inputs: ['x', 'dy'],
  depthwise: true,
  needsDilations: true,
  shapes: (x, _dy, a) => [
    x.shape as Shape4,
    (a as unknown as DepthwiseConv2dNativeBackpropFilterAttrs).filterShape,
  ],
  outShape: (_info, a) => (a as unknown as DepthwiseConv2dNativeBackpropFilterAttrs).filterShape,
  entry: (addon) => addon.DepthwiseConv2dNativeBackpropFilter,
});
