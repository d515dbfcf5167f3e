/**
 * A compression stage that only tests use, written as a user would add one: this file and one
 * `registerStage(zeroSmallest)` line. It zeroes the smallest-|w| `fraction` of one kernel (the
 * first prunable one unless `layer` names another) and keeps nothing for later stages.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { prunableKernels } from '../../../src/compress/prune/magnitude.js';
import type { StageDescriptor } from '../../../src/compress/stages/types.js';

export const zeroSmallestSchema = z.strictObject({
  fraction: z.number().min(0).lt(1),
  layer: z.string().optional(),
});
export type ZeroSmallestConfig = z.output<typeof zeroSmallestSchema>;

export const zeroSmallest: StageDescriptor<ZeroSmallestConfig> = {
  name: 'zero-smallest',
  key: 'zeroSmallest',
  schema: zeroSmallestSchema,
  label: 'zero-smallest',
  measured: true,
  needs: {},
  async run(ctx, c) {
    const [{ layer, kernel }] = prunableKernels(ctx.model, c.layer === undefined ? undefined : [c.layer]) as [
      { layer: string; kernel: tf.Variable },
    ];
    const k = Math.floor(c.fraction * kernel.size);
    if (k > 0) {
      const sorted = Float32Array.from(kernel.dataSync(), Math.abs).sort();
      const threshold = sorted[k - 1]!;
      const kept = tf.tidy(() => tf.mul(kernel, tf.cast(tf.greater(tf.abs(kernel), threshold), 'float32')));
      kernel.assign(kept);
      kept.dispose();
    }
    ctx.log(`zero-smallest: ${k} of ${kernel.size} weights of ${layer} set to 0`);
    return {};
  },
};
