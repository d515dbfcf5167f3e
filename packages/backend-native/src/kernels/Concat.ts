/**
 * Concat as native strided copies into one pooled output. The cpu kernel copies element by element
 * into a fresh array (page faults on every call): in ShuffleNetV2's training step at batch 128 its 16
 * channel concats took 465 ms of 1245.
 */
import { backend_util, type TensorInfo, util } from '@tensorflow/tfjs-core';
import { allF32, type NativeKernel, sizeOf } from './kernel.js';

export const concat: NativeKernel = {
  kernelName: 'Concat',
  run({ inputs, attrs, backend, addon }) {
    const xs = (Array.isArray(inputs) ? inputs : Object.values(inputs)) as TensorInfo[];
    if (xs.length === 0 || !allF32(...xs)) return null;
    const rank = xs[0]!.shape.length;
    if (rank === 0 || rank > 6 || xs.some((t) => t.shape.length !== rank)) return null;
    const ax = util.parseAxisParam((attrs as { axis: number }).axis, xs[0]!.shape)[0]!;
    // Every other dimension must agree; the cpu kernel gives tfjs's own error when it does not.
    if (xs.some((t) => t.shape.some((d, i) => i !== ax && d !== xs[0]!.shape[i]))) return null;
    const outShape = backend_util.computeOutShape(
      xs.map((t) => t.shape),
      ax,
    );
    if (sizeOf(outShape) === 0) return null;
    const out = backend.makeOutputF32(outShape);
    const oshape = Int32Array.from(outShape);
    let offset = 0;
    for (const t of xs) {
      if (sizeOf(t.shape) > 0)
        addon.Concat(backend.f32(t)!, out.values, Int32Array.from(t.shape), oshape, ax, offset);
      offset += t.shape[ax]!;
    }
    return out.info;
  },
};
