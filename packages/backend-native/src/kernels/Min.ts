/** Min over any axes (float32) natively; see reduce_util.ts and native/Min.cc. */
import type { MinAttrs } from '@tensorflow/tfjs-core';
import type { NativeKernel } from './kernel.js';
import { nativeReduce } from './reduce_util.js';

export const min: NativeKernel = {
  kernelName: 'Min',
  run(args) {
    const a = args.attrs as unknown as MinAttrs;
    return nativeReduce('Min', args, a.axis, a.keepDims);
  },
};
