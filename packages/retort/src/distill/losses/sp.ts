/**
 * SP: Tung and Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019. Examples that the
 * teacher represents alike should be alike for the student: the batch Gram matrices G = f f^T of
 * the flattened features, row-L2-normalised, are matched, sum((G_t - G_s)^2) / N^2. Only the batch
 * size must agree, not the feature shapes. RepDistiller taps the last stage's map; beta 3000.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { checkBatch, flattenRows, l2Normalize } from './feature-ops.js';
import { detach, type LossDescriptor } from './types.js';

export const spSchema = z.strictObject({});
export type SpConfig = z.output<typeof spSchema>;

function similarity(f: tf.Tensor): tf.Tensor2D {
  const x = flattenRows(f);
  return l2Normalize(tf.matMul(x, x, false, true)) as tf.Tensor2D;
}

/** sum((G_t - G_s)^2) / N^2 for features [N, ...] of any shapes. */
export function spLoss(student: tf.Tensor, teacher: tf.Tensor): tf.Scalar {
  checkBatch('spLoss', student, teacher);
  const n = student.shape[0]!;
  return tf.tidy(
    () =>
      tf.div(tf.sum(tf.square(tf.sub(similarity(detach(teacher)), similarity(student)))), n * n) as tf.Scalar,
  );
}

export const sp: LossDescriptor<SpConfig, 'feat'> = {
  name: 'sp',
  paper: {
    title: 'Similarity-Preserving Knowledge Distillation',
    authors: 'Frederick Tung, Greg Mori',
    venue: 'ICCV',
    year: 2019,
  },
  schema: spSchema,
  needs: { taps: { student: ['feat'], teacher: ['feat'] } },
  loss: (ctx) => spLoss(ctx.student.features.feat, ctx.teacher.features.feat),
};
