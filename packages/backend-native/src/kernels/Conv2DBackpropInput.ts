/** Conv2DBackpropInput: gradient of Conv2D with respect to its input, on oneDNN. */
import type { Conv2DBackpropInputAttrs } from '@tensorflow/tfjs-core';
import { convKernel, type Shape4 } from './conv_util.js';

export const conv2DBackpropInput = convKernel({
  kernelName: 'Conv2DBackpropInput',
  inputs: ['dy', 'filter'],
  depthwise: false,
  needsDilations: false,
  shapes: (_dy, f, a) => [(a as unknown as Conv2DBackpropInputAttrs).inputShape, f.shape as Shape4],
  outShape: (info) => info.inShape,
  entry: (addon) => addon.Conv2DBackpropInput,
});
