/** Max over any axes (float32) natively, NaN propagating as in tfjs; see reduce_util.ts. */
import type { MaxAttrs } from '@tensorflow/tfjs-core';
import type { NativeKernel } from './kernel.js';
import { nativeReduce } from './reduce_util.js';

export const max: NativeKernel = {
  kernelName: 'Max',
  run(args) {
    const a = args.attrs as unknown as MaxAttrs;
    return nativeReduce('Max', args, a.reductionIndices, a.keepDims);
  },
};
