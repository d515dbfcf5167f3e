/** Mean over any axes (float32) natively; see reduce_util.ts and native/Mean.cc. */
import type { MeanAttrs } from '@tensorflow/tfjs-core';
import type { NativeKernel } from './kernel.js';
import { nativeReduce } from './reduce_util.js';

export const mean: NativeKernel = {
  kernelName: 'Mean',
  run(args) {
    const a = args.attrs as unknown as MeanAttrs;
    return nativeReduce('Mean', args, a.axis, a.keepDims);
  },
};
