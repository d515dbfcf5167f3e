/** Conv2DBackpropFilter: gradient of Conv2D with respect to its filter (HWIO), on oneDNN. */
import { backend_util, type Conv2DBackpropFilterAttrs } from '@tensorflow/tfjs-core';
import { convGeometry } from './conv_util.js';
import { allF32, type NativeKernel } from './kernel.js';

export const conv2DBackpropFilter: NativeKernel = {
  kernelName: 'Conv2DBackpropFilter',
  run({ inputs, attrs, backend, addon }) {
    const { x, dy } = inputs;
    if (x === undefined || dy === undefined || !allF32(x, dy)) return null;
    const a = attrs as unknown as Conv2DBackpropFilterAttrs;
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      a.filterShape,
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
      false,
      backend_util.convertConv2DDataFormat(a.dataFormat),
    );
    const geom = convGeometry(info, false);
    if (geom === null) return null;
    const out = backend.makeOutputF32(a.filterShape);
    addon.Conv2DBackpropFilter(backend.f32(x)!, backend.f32(dy)!, out.values, geom);
    return out.info;
  },
};
