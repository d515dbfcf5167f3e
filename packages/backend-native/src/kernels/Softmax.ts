/**
 * Softmax over the last axis (float32) natively, max-subtracted as in tfjs. tfjs's op accepts only
 * the last axis; any other `dim` reaching the kernel goes to the cpu kernel (which rejects it).
 */
import type { SoftmaxAttrs } from '@tensorflow/tfjs-core';
import type { NativeKernel } from './kernel.js';
import { f32Input } from './reduce_util.js';

export const softmax: NativeKernel = {
  kernelName: 'Softmax',
  run({ inputs, attrs, backend, addon }) {
    const { logits } = inputs;
    const { dim } = attrs as unknown as SoftmaxAttrs;
    const values = f32Input(backend, logits);
    if (logits === undefined || values === null) return null;
    const rank = logits.shape.length;
    if (rank === 0 || (dim !== -1 && dim !== rank - 1)) return null;
    const cols = logits.shape[rank - 1]!;
    const out = backend.makeOutputF32(logits.shape.slice());
    addon.Softmax(values, out.values, values.length / cols, cols);
    return out.info;
  },
};
