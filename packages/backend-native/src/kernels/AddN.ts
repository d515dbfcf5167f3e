/**
 * AddN (tf.addN): the sum of N same-shape float32 tensors. tfjs's tape accumulates gradients with Add,
 * so this is for explicit tf.addN calls.
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { f32Storage } from './f32_storage.js';
import type { NativeKernel } from './kernel.js';

/** Inputs per native call: the addon reads at most 32 arguments, one of them the output. */
const PER_CALL = 31;

export const addN: NativeKernel = {
  kernelName: 'AddN',
  run({ inputs, backend, addon }) {
    // tfjs passes AddN's inputs as an array, not by name.
    const xs = inputs as unknown as TensorInfo[];
    const first = xs[0];
    const vals = f32Storage(backend, xs);
    if (first === undefined || vals === null) return null;
    const out = backend.makeOutputF32(first.shape);
    addon.AddN(out.values, ...vals.slice(0, PER_CALL));
    // Longer lists continue from the partial sum (passed as the first input): the additions happen in
    // the same order as in one pass, so the result is the same.
    for (let i = PER_CALL; i < vals.length; i += PER_CALL - 1) {
      addon.AddN(out.values, out.values, ...vals.slice(i, i + PER_CALL - 1));
    }
    return out.info;
  },
};
