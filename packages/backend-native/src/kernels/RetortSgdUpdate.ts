/** Native fused SGD (momentum, nesterov, weight decay) update (see custom/optimizer_kernels.ts). */
import type { SgdUpdateAttrs } from '../custom/optimizer_kernels.js';
import { allF32, type NativeKernel } from './kernel.js';

export const retortSgdUpdate: NativeKernel = {
  kernelName: 'RetortSgdUpdate',
  run({ inputs, attrs, backend, addon }) {
    const { p, g, buf } = inputs;
    if (p === undefined || g === undefined || buf === undefined || !allF32(p, g, buf)) return null;
    const a = attrs as unknown as SgdUpdateAttrs;
    const op = backend.makeOutputF32(p.shape);
    const ob = backend.makeOutputF32(p.shape);
    addon.RetortSgdUpdate(
      backend.f32(p)!,
      backend.f32(g)!,
      backend.f32(buf)!,
      op.values,
      ob.values,
      a.lr,
      a.momentum,
      a.dampening,
      a.weightDecay,
      a.nesterov ? 1 : 0,
      a.firstStep ? 1 : 0,
    );
    return [op.info, ob.info];
  },
};
