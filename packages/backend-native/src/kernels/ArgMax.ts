/**
 * ArgMax over one axis of a float32 tensor natively. The int32 result is a fresh Int32Array (the
 * buffer pool holds float32 storage only); ArgMax outputs are small (one index per row).
 */
import { type ArgMaxAttrs, util } from '@tensorflow/tfjs-core';
import { type NativeKernel, sizeOf } from './kernel.js';
import { f32Input } from './reduce_util.js';

export const argMax: NativeKernel = {
  kernelName: 'ArgMax',
  run({ inputs, attrs, backend, addon }) {
    const { x } = inputs;
    const { axis } = attrs as unknown as ArgMaxAttrs;
    const values = f32Input(backend, x);
    // The addon takes shapes up to rank 8 (native/common.h kMaxRank).
    if (x === undefined || values === null || x.shape.length > 8) return null;
    // Exactly one axis: tfjs cpu throws for several (or none, as for a missing axis of a tensor of
    // rank > 1); parseAxisParam throws as cpu's does for a bad one.
    const axes = util.parseAxisParam(axis, x.shape);
    const ax = axes[0];
    if (axes.length !== 1 || ax === undefined) return null;
    const outShape = x.shape.filter((_, i) => i !== ax);
    const out = new Int32Array(sizeOf(outShape));
    addon.ArgMax(values, out, Int32Array.from(x.shape), ax);
    return backend.makeTensorInfo(outShape, 'int32', out);
  },
};
