/**
 * CE: cross-entropy with the ground-truth labels, the supervised term of every recipe (RepDistiller's
 * gamma weight). A method like any other, so baselines and distillation runs share one code path.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import type { LossDescriptor } from './types.js';

export const ceSchema = z.strictObject({
  /** Label smoothing epsilon as in torch.nn.CrossEntropyLoss(label_smoothing=...). */
  labelSmoothing: z.number().min(0).max(1).default(0),
});
export type CeConfig = z.output<typeof ceSchema>;

/** Mean softmax cross-entropy. logits: [N, K]; labels: int32 [N]. */
export function crossEntropy(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  opts: CeConfig = { labelSmoothing: 0 },
): tf.Scalar {
  const K = logits.shape[1];
  return tf.tidy(
    () =>
      tf.losses.softmaxCrossEntropy(
        tf.oneHot(labels, K),
        logits,
        undefined,
        opts.labelSmoothing,
      ) as tf.Scalar,
  );
}

export const ce: LossDescriptor<CeConfig> = {
  name: 'ce',
  paper: { title: 'Cross-entropy with hard labels', authors: '-', venue: '-', year: 1990 },
  schema: ceSchema,
  needs: {},
  loss: (ctx) => crossEntropy(ctx.student.logits, ctx.labels, ctx.config),
};
