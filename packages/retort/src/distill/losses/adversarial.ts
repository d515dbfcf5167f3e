/**
 * Adversarial distillation: a discriminator learns to tell the teacher's class distributions from
 * the student's, and the student learns to fool it, beside the usual KD terms (Wang, Zhang, Qi,
 * "KDGAN: Knowledge Distillation with Generative Adversarial Networks", NeurIPS 2018; Xu, Hsu,
 * Huang, "Training Shallow and Thin Networks for Acceleration via Knowledge Distillation with
 * Conditional Adversarial Networks", ICLR-W 2018, for the discriminator on logits).
 *
 * The term's value is the discriminator's loss,
 *   L = BCE(D(softmax(t / T)), 1) + BCE(D(softmax(s / T)), 0)       (means over the batch)
 * with D an MLP (K -> hidden, leaky ReLU 0.2, -> 1 logit). The discriminator (a trainable part)
 * minimises L; the student's distributions pass through a gradient-reversal layer (Ganin &
 * Lempitsky, ICML 2015), so the same step moves the student to maximise L, scaled by `reverse`.
 * This is the simultaneous form of the min-max game: one optimizer and one checkpoint hold both
 * players, so resume stays exact; KDGAN alternates the two updates instead.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { checkLogitPair } from './kd.js';
import { detach, type LossDescriptor } from './types.js';

export const adversarialSchema = z.strictObject({
  /** Temperature of the distributions the discriminator sees. */
  T: z.number().positive().default(1),
  /** Hidden width of the discriminator. */
  hidden: z.number().int().positive().default(64),
  /** Scale of the reversed gradient the student gets (the generator's weight in the game). */
  reverse: z.number().min(0).default(1),
});
export type AdversarialConfig = z.output<typeof adversarialSchema>;

export type AdversarialParts = Readonly<Record<'discriminator', tfl.LayersModel>>;

/** Identity forward; the gradient times -scale backward. */
export function reverseGradient(x: tf.Tensor, scale: number): tf.Tensor {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.clone(args[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => tf.mul(dy, -scale),
  }));
  return f(x);
}

export function makeDiscriminator(numClasses: number, hidden: number, seed?: number): tfl.LayersModel {
  const init = (s: number) => (seed === undefined ? {} : { seed: seed + s });
  return tfl.sequential({
    name: 'adv_discriminator',
    layers: [
      tfl.layers.dense({
        name: 'adv_d.fc1',
        inputShape: [numClasses],
        units: hidden,
        kernelInitializer: tfl.initializers.glorotUniform(init(0)),
      }),
      tfl.layers.leakyReLU({ name: 'adv_d.act', alpha: 0.2 }),
      tfl.layers.dense({
        name: 'adv_d.fc2',
        units: 1,
        kernelInitializer: tfl.initializers.glorotUniform(init(1)),
      }),
    ],
  });
}

/** Mean binary cross-entropy of logits z against a constant label (0 or 1), stable for any z. */
function bceWithLogits(z: tf.Tensor, label: 0 | 1): tf.Scalar {
  // -log sigmoid(z) = softplus(-z); -log(1 - sigmoid(z)) = softplus(z).
  return tf.mean(tf.softplus(label === 1 ? tf.neg(z) : z)) as tf.Scalar;
}

/** The discriminator's loss; the student side reversed (see the file header). */
export function adversarialLoss(
  studentLogits: tf.Tensor2D,
  teacherLogits: tf.Tensor2D,
  discriminator: tfl.LayersModel,
  opts: AdversarialConfig,
): tf.Scalar {
  checkLogitPair('adversarialLoss', studentLogits, teacherLogits);
  return tf.tidy(() => {
    const pt = tf.softmax(tf.div(detach(teacherLogits), opts.T));
    const ps = reverseGradient(tf.softmax(tf.div(studentLogits, opts.T)), opts.reverse);
    const dt = discriminator.apply(pt) as tf.Tensor;
    const ds = discriminator.apply(ps) as tf.Tensor;
    return tf.add(bceWithLogits(dt, 1), bceWithLogits(ds, 0)) as tf.Scalar;
  });
}

export const adversarial: LossDescriptor<AdversarialConfig, never, AdversarialParts> = {
  name: 'adversarial',
  paper: {
    title: 'KDGAN: Knowledge Distillation with Generative Adversarial Networks',
    authors: 'Xiaojie Wang, Rui Zhang, Yu Sun, Jianzhong Qi',
    venue: 'NeurIPS',
    year: 2018,
  },
  schema: adversarialSchema,
  needs: { logits: true },
  parts: (_shapes, cfg, data) => ({
    discriminator: makeDiscriminator(data.numClasses, cfg.hidden, data.seed),
  }),
  loss: (ctx) => adversarialLoss(ctx.student.logits, ctx.teacher.logits, ctx.parts.discriminator, ctx.config),
};
