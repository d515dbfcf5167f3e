/**
 * DKD: Zhao, Cui, Song, Qiu and Liang, "Decoupled Knowledge Distillation", CVPR 2022. Classical KD
 * split into target-class KD (TCKD: the binary target-vs-rest distributions) and non-target-class KD
 * (NCKD: the distribution among the other classes), reweighted as alpha * TCKD + beta * NCKD
 * (eq. 7), each with KD's T^2 scaling and batch mean. Semantics of mdistiller's dkd_loss, including
 * the linear warm-up of the whole term over the first epochs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { checkLogitPair } from './kd.js';
import { detach, type LossDescriptor } from './types.js';

export const dkdSchema = z.strictObject({
  /** TCKD weight. */
  alpha: z.number().min(0).default(1),
  /** NCKD weight (mdistiller uses 8 on CIFAR-100 for most pairs). */
  beta: z.number().min(0).default(8),
  /** Softmax temperature. */
  T: z.number().positive().default(4),
  /** Epochs of linear warm-up of the whole DKD term (0 = none). */
  warmup: z.number().min(0).default(20),
});
export type DkdConfig = z.output<typeof dkdSchema>;

export interface DkdOptions {
  alpha: number;
  beta: number;
  T: number;
  /** Multiplies the whole loss; see dkdWarmupFactor. */
  warmupFactor: number;
}

// Added to the target logit's negative: exp(-1000) is 0 even in float64, so the softmax over the
// masked logits is the distribution among the non-target classes (mdistiller's trick).
const MASK = 1000;

/**
 * warmupFactor * (alpha * TCKD + beta * NCKD).
 * studentLogits, teacherLogits: [N, K] with K >= 2; labels: int32 [N] in [0, K). The teacher side
 * gets no gradient.
 */
export function dkdLoss(
  studentLogits: tf.Tensor2D,
  teacherLogits: tf.Tensor2D,
  labels: tf.Tensor1D,
  opts: DkdOptions,
): tf.Scalar {
  checkLogitPair('dkdLoss', studentLogits, teacherLogits, 2);
  const [n, k] = studentLogits.shape;
  if (labels.rank !== 1 || labels.shape[0] !== n || labels.dtype !== 'int32') {
    throw new Error(
      `dkdLoss: expected int32 labels [${n}], got ${labels.dtype} [${labels.shape.join(', ')}]`,
    );
  }
  const { alpha, beta, T, warmupFactor } = opts;
  return tf.tidy(() => {
    const gt = tf.cast(tf.oneHot(labels, k), 'float32');
    const masked = tf.mul(gt, MASK);
    const zS = tf.div(studentLogits, T);
    const zT = tf.div(detach(teacherLogits), T);
    // TCKD on [log p_target, log p_rest]. mdistiller sums probabilities and takes the log; the
    // log-sum-exp form is the same value and stays finite when p_rest underflows.
    const binaryLog = (z: tf.Tensor): tf.Tensor => {
      const logP = tf.logSoftmax(z);
      const logTarget = tf.sum(tf.mul(logP, gt), 1, true);
      const logRest = tf.logSumExp(tf.sub(logP, masked), 1, true);
      return tf.concat([logTarget, logRest], 1);
    };
    const tckd = klSum(binaryLog(zT), binaryLog(zS));
    const nckd = klSum(tf.logSoftmax(tf.sub(zT, masked)), tf.logSoftmax(tf.sub(zS, masked)));
    const total = tf.add(tf.mul(tckd, alpha), tf.mul(nckd, beta));
    return tf.mul(total, (warmupFactor * T * T) / n) as tf.Scalar;
  });
}

/** sum p * (log p - log q) over all elements, from log-probabilities (0 * log 0 = 0). */
function klSum(logP: tf.Tensor, logQ: tf.Tensor): tf.Scalar {
  return tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logQ)));
}

/**
 * mdistiller's min(epoch / warmup, 1) with its epochs counted from 1; `epoch` here is 0-based, as
 * the trainer counts, so the first epoch gets 1 / warmup. warmup 0 means no warm-up.
 */
export function dkdWarmupFactor(epoch: number, warmup: number): number {
  return warmup > 0 ? Math.min((epoch + 1) / warmup, 1) : 1;
}

export const dkd: LossDescriptor<DkdConfig> = {
  name: 'dkd',
  paper: {
    title: 'Decoupled Knowledge Distillation',
    authors: 'Borui Zhao, Quan Cui, Renjie Song, Yiyu Qiu, Jiajun Liang',
    venue: 'CVPR',
    year: 2022,
  },
  schema: dkdSchema,
  needs: { logits: true },
  loss: ({ student, teacher, labels, epoch, config: c }) =>
    dkdLoss(student.logits, teacher.logits, labels, {
      alpha: c.alpha,
      beta: c.beta,
      T: c.T,
      warmupFactor: dkdWarmupFactor(epoch, c.warmup),
    }),
};
