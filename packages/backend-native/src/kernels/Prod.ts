/** Prod over any axes (float32) natively; see reduce_util.ts and native/Prod.cc. */
import type { ProdAttrs } from '@tensorflow/tfjs-core';
import type { NativeKernel } from './kernel.js';
import { nativeReduce } from './reduce_util.js';

export const prod: NativeKernel = {
  kernelName: 'Prod',
  run(args) {
    const a = args.attrs as unknown as ProdAttrs;
    return nativeReduce('Prod', args, a.axis, a.keepDims);
  },
};
