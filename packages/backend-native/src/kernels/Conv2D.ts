/** Conv2D (NHWC x, HWIO filter) on oneDNN. */
import { convKernel, type Shape4 } from './conv_util.js';

export const conv2D = convKernel({
  kernelName: 'Conv2D',
  inputs: ['x', 'filter'],
  depthwise: false,
  needsDilations: true,
  shapes: (x, f) => [x.shape as Shape4, f.shape as Shape4],
  outShape: (info) => info.outShape,
  entry: (addon) => addon.Conv2D,
});
