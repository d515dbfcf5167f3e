/** Native fused Adam/AdamW update (see custom/optimizer_kernels.ts for the contract). */
import type { AdamUpdateAttrs } from '../custom/optimizer_kernels.js';
import { allF32, type NativeKernel } from './kernel.js';

export const retortAdamUpdate: NativeKernel = {
  kernelName: 'RetortAdamUpdate',
  run({ inputs, attrs, backend, addon }) {
    const { p, g, m, v } = inputs;
    if (p === undefined || g === undefined || m === undefined || v === undefined || !allF32(p, g, m, v))
      return null;
    const a = attrs as unknown as AdamUpdateAttrs;
    const op = backend.makeOutputF32(p.shape);
    const om = backend.makeOutputF32(p.shape);
    const ov = backend.makeOutputF32(p.shape);
    addon.RetortAdamUpdate(
      backend.f32(p)!,
      backend.f32(g)!,
      backend.f32(m)!,
      backend.f32(v)!,
      op.values,
      om.values,
      ov.values,
      a.lr,
      a.beta1,
      a.beta2,
      a.eps,
      a.c1,
      a.c2,
      a.weightDecay,
      a.decoupled ? 1 : 0,
    );
    return [op.info, om.info, ov.info];
  },
};
