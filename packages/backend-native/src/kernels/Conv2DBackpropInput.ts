/** Conv2DBackpropInput: gradient of Conv2D with respect to its input, on oneDNN. */
import { backend_util, type Conv2DBackpropInputAttrs } from '@tensorflow/tfjs-core';
import { convGeometry } from './conv_util.js';
import { allF32, type NativeKernel } from './kernel.js';

export const conv2DBackpropInput: NativeKernel = {
  kernelName: 'Conv2DBackpropInput',
  run({ inputs, attrs, backend, addon }) {
    const { dy, filter } = inputs;
    if (dy === undefined || filter === undefined || !allF32(dy, filter)) return null;
    const a = attrs as unknown as Conv2DBackpropInputAttrs;
    const info = backend_util.computeConv2DInfo(
      a.inputShape,
      filter.shape as [number, number, number, number],
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
      false,
      backend_util.convertConv2DDataFormat(a.dataFormat),
    );
    const geom = convGeometry(info, false);
    if (geom === null) return null;
    const out = backend.makeOutputF32(info.inShape);
    addon.Conv2DBackpropInput(backend.f32(dy)!, backend.f32(filter)!, out.values, geom);
    return out.info;
  },
};
