/** DepthwiseConv2dNative (filter [KH, KW, C, M]) as a oneDNN grouped convolution with C groups. */
import { convKernel, type Shape4 } from './conv_util.js';

export const depthwiseConv2dNative = convKernel({
  kernelName: 'DepthwiseConv2dNative',
  inputs: ['x', 'filter'],
  depthwise: true,
  needsDilations: false,
  shapes: (x, f) => [x.shape as Shape4, f.shape as Shape4],
  outShape: (info) => info.outShape,
  entry: (addon) => addon.DepthwiseConv2dNative,
});
