/** Sum over any axes (float32) natively; see reduce_util.ts and native/Sum.cc. */
import type { SumAttrs } from '@tensorflow/tfjs-core';
import type { NativeKernel } from './kernel.js';
import { nativeReduce } from './reduce_util.js';

export const sum: NativeKernel = {
  kernelName: 'Sum',
  run(args) {
    const a = args.attrs as unknown as SumAttrs;
    return nativeReduce('Sum', args, a.axis, a.keepDims);
  },
};
