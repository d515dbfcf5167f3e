/**
 * Cosine hidden-representation loss from the PyTorch tutorial "Knowledge Distillation Tutorial"
 * (A. Chariton, pytorch.org/tutorials/beginner/knowledge_distillation_tutorial, 2023): both
 * networks' features are flattened, the teacher's are average-pooled (a 1-D pool over the flat
 * vector) down to the student's width, and CosineEmbeddingLoss with target 1, mean(1 - cos), pulls
 * the student's direction toward the teacher's. No trainable parts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { detach, type LossDescriptor } from './types.js';

export const cosineSchema = z.strictObject({
  /**
   * Element order of flattened NHWC maps. 'nchw' (the tutorial's torch.flatten of NCHW maps) pools
   * neighbouring positions along W within a channel; 'nhwc' pools neighbouring channels at each
   * position and skips a transpose. Vectors ([N, D]) are the same either way.
   */
  order: z.enum(['nchw', 'nhwc']).default('nchw'),
});
export type CosineConfig = z.output<typeof cosineSchema>;

// ATen's cosine_embedding_loss adds this to each squared norm, so a zero vector gives cos = 0.
const EPS = 1e-12;

/**
 * mean over the batch of 1 - cos(student, pool(teacher)).
 * student: [N, ...] (a [N, H, W, C] map or a [N, D] vector); teacher: [N, ...] with a flat width
 * that is a multiple of the student's. The teacher side gets no gradient.
 */
export function cosineLoss(student: tf.Tensor, teacher: tf.Tensor, opts: CosineConfig): tf.Scalar {
  const n = student.shape[0];
  const ds = student.size / (n || 1);
  const dt = teacher.size / (n || 1);
  if (student.rank < 2 || teacher.rank < 2 || teacher.shape[0] !== n || n === 0 || dt % ds !== 0) {
    throw new Error(
      `cosineLoss: expected student [N, ...] and teacher [N, ...] with the teacher's flat width a ` +
        `multiple of the student's, got student [${student.shape.join(', ')}] (width ${ds}) and ` +
        `teacher [${teacher.shape.join(', ')}] (width ${dt})`,
    );
  }
  return tf.tidy(() => {
    const s = flatten(student, opts.order);
    // avg_pool1d with kernel = stride = dt / ds on the flat vector: the mean of each run of k values.
    const t = tf.mean(tf.reshape(flatten(detach(teacher), opts.order), [n, ds, dt / ds]), 2);
    const dot = tf.sum(tf.mul(s, t), 1);
    const norms = tf.mul(tf.add(tf.sum(tf.square(s), 1), EPS), tf.add(tf.sum(tf.square(t), 1), EPS));
    const cos = tf.div(dot, tf.sqrt(norms));
    return tf.mean(tf.sub(1, cos)) as tf.Scalar;
  });
}

function flatten(x: tf.Tensor, order: CosineConfig['order']): tf.Tensor2D {
  const nchw = x.rank === 4 && order === 'nchw' ? tf.transpose(x, [0, 3, 1, 2]) : x;
  return tf.reshape(nchw, [x.shape[0]!, -1]);
}

export const cosine: LossDescriptor<CosineConfig, 'hidden'> = {
  name: 'cosine',
  paper: {
    title: 'Knowledge Distillation Tutorial (cosine loss on hidden representations)',
    authors: 'Alexandros Chariton',
    venue: 'PyTorch Tutorials',
    year: 2023,
  },
  schema: cosineSchema,
  needs: { taps: { student: ['hidden'], teacher: ['hidden'] } },
  loss: (ctx) => cosineLoss(ctx.student.features.hidden, ctx.teacher.features.hidden, ctx.config),
};
