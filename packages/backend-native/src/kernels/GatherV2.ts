/**
 * GatherV2 (batchDims 0, float32 x, int32 indices) and 1-D-id UnsortedSegmentSum natively: tfjs's
 * cpu versions walk element by element (gather) or make one mask and one sum per segment
 * (segment sum), which made k-means codebook fine-tuning and memory-bank lookups slow. Anything
 * else, and any index out of range (the JS kernel then throws its own error), falls back to JS.
 */
import {
  type GatherV2Attrs,
  type TensorInfo,
  type UnsortedSegmentSumAttrs,
  util,
} from '@tensorflow/tfjs-core';
import type { NativeBackend } from '../backend.js';
import { isInt32, type NativeKernel } from './kernel.js';

function i32(backend: NativeBackend, t: TensorInfo | undefined): Int32Array | null {
  if (t === undefined || t.dtype !== 'int32') return null;
  const v = backend.data.get(t.dataId)?.values;
  return v instanceof Int32Array ? v : null;
}

export const gatherV2: NativeKernel = {
  kernelName: 'GatherV2',
  run({ inputs, attrs, backend, addon }) {
    const { x, indices } = inputs;
    const a = attrs as unknown as GatherV2Attrs;
    const idx = i32(backend, indices);
    if (x === undefined || x.dtype !== 'float32' || idx === null || (a.batchDims ?? 0) !== 0) return null;
    const xv = backend.f32(x);
    if (xv === null || x.shape.length === 0) return null;
    const axis = util.parseAxisParam(a.axis, x.shape)[0]!;
    const dim = x.shape[axis]!;
    for (let i = 0; i < idx.length; i++) if (!(idx[i]! >= 0 && idx[i]! < dim)) return null;
    const outer = util.sizeFromShape(x.shape.slice(0, axis));
    const inner = util.sizeFromShape(x.shape.slice(axis + 1));
    const outShape = [...x.shape.slice(0, axis), ...indices!.shape, ...x.shape.slice(axis + 1)];
    if (util.sizeFromShape(outShape) === 0) return null;
    const out = backend.makeOutputF32(outShape);
    addon.GatherV2(xv, idx, out.values, outer, dim, inner);
    return out.info;
  },
};

export const unsortedSegmentSum: NativeKernel = {
  kernelName: 'UnsortedSegmentSum',
  run({ inputs, attrs, backend, addon }) {
    const { x, segmentIds } = inputs;
    const { numSegments } = attrs as unknown as UnsortedSegmentSumAttrs;
    const ids = i32(backend, segmentIds);
    if (x === undefined || x.dtype !== 'float32' || ids === null || segmentIds!.shape.length !== 1)
      return null;
    const xv = backend.f32(x);
    if (xv === null || x.shape[0] !== ids.length || ids.length === 0) return null;
    // A whole number of segments (1.5 would make a [1.5, ...] shape; the cpu kernel serves the rest).
    if (!isInt32(numSegments, 1)) return null;
    const out = backend.makeOutputF32([numSegments, ...x.shape.slice(1)]);
    if (out.values.length === 0) return null;
    addon.UnsortedSegmentSum(xv, ids, out.values, numSegments);
    return out.info;
  },
};
