/** Conv2DBackpropFilter: gradient of Conv2D with respect to its filter (HWIO), on oneDNN. */
import type { Conv2DBackpropFilterAttrs } from '@tensorflow/tfjs-core';
import { convKernel, type Shape4 } from './conv_util.js';

export const conv2DBackpropFilter = convKernel({
  kernelName: 'Conv2DBackpropFilter',
  inputs: ['x', 'dy'],
  depthwise: false,
  needsDilations: false,
  shapes: (x, _dy, a) => [x.shape as Shape4, (a as unknown as Conv2DBackpropFilterAttrs).filterShape],
  outShape: (_info, a) => (a as unknown as Conv2DBackpropFilterAttrs).filterShape,
  entry: (addon) => addon.Conv2DBackpropFilter,
});
