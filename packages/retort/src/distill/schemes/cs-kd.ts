/**
 * Class-wise self-knowledge distillation, CS-KD (Yun, Park, Lee, Shin, "Regularizing Class-wise
 * Predictions via Self-knowledge Distillation", CVPR 2020). No teacher: for every training image x
 * of class y the student also sees x', another training image of class y, and its softened
 * prediction on x' (no gradient) is the target for its prediction on x:
 *
 *   L = (the experiment's losses, CE) + lambda * T^2 / N * sum_i KL(softmax(f(x'_i)/T) || softmax(f(x_i)/T))
 *
 * which pulls the predictions of one class together and so curbs over-confident, scattered
 * predictions (the paper's T = 4, lambda = 1 on CIFAR). As in the paper, the partner batch goes
 * through the student in training mode (batch statistics), outside the gradient tape.
 *
 * The partner of dataset index i in epoch e is drawn uniformly among the other training images of
 * its class by a hash of (seed, e, i): stateless, so a resumed run draws the same partners. The
 * partners get the data section's augmentation (they are assembled by the training loader, whose
 * random state is checkpointed).
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { BatchLoader } from '../../data/loader.js';
import type { StepInput, TrainTask } from '../../train/trainer.js';
import { RetortError } from '../../util/errors.js';
import { hash32 } from '../../util/rng.js';
import { kdLoss } from '../losses/kd.js';
import { buildOfflineTask, fitSingleStage, needsTeacher, requireOneStage } from './offline.js';
import type { SchemeDescriptor } from './types.js';

export const csKdSchema = z.strictObject({
  /** Softening temperature of both predictions. */
  T: z.number().positive().default(4),
  /** Weight of the class-wise term. */
  lambda: z.number().min(0).default(1),
});
export type CsKdConfig = z.output<typeof csKdSchema>;

/** T^2 / N * sum KL(softmax(partner / T) || softmax(student / T)); the partner is detached. */
export function csKdLoss(studentLogits: tf.Tensor2D, partnerLogits: tf.Tensor2D, T: number): tf.Scalar {
  return kdLoss(studentLogits, partnerLogits, { T });
}

/** Training-split indices by class (`labels[i]` for each index in `indices`). */
export function indicesByClass(labels: ArrayLike<number>, indices: Uint32Array): Map<number, Uint32Array> {
  const lists = new Map<number, number[]>();
  for (const i of indices) {
    const y = labels[i]!;
    if (!lists.has(y)) lists.set(y, []);
    lists.get(y)!.push(i);
  }
  return new Map([...lists].map(([y, l]) => [y, Uint32Array.from(l)]));
}

/**
 * For each index, another index of the same class (the index itself when it is its class's only
 * one), drawn by hash of (seed, epoch, index).
 */
export function classPartners(
  index: Uint32Array,
  labels: ArrayLike<number>,
  byClass: Map<number, Uint32Array>,
  epoch: number,
  seed: number,
): Uint32Array {
  return Uint32Array.from(index, (i) => {
    const same = byClass.get(labels[i]!)!;
    if (same.length < 2) return i;
    // Draw among the others: a position in [0, n - 1), skipping i's own position.
    let j = same[hash32(seed, epoch, i) % (same.length - 1)]!;
    if (j === i) j = same[same.length - 1]!;
    return j;
  });
}

export const csKd: SchemeDescriptor<CsKdConfig> = {
  name: 'cs-kd',
  paper: {
    title: 'Regularizing Class-wise Predictions via Self-knowledge Distillation',
    authors: 'Sukmin Yun, Jongjin Park, Kimin Lee, Jinwoo Shin',
    venue: 'CVPR',
    year: 2020,
  },
  schema: csKdSchema,
  teacher: 'none',
  check(exp, _cfg, stages, where) {
    requireOneStage(exp, 'cs-kd', where);
    const bound = stages[0]!.terms.filter(needsTeacher);
    if (bound.length > 0)
      throw new RetortError(
        `${where}: scheme cs-kd has no teacher (the student teaches itself across images of a class): ${bound.map((t) => t.label).join(', ')} needs one`,
      );
  },
  async run(ctx) {
    const { exp, config, log } = ctx;
    const train = ctx.data.train;
    if (!(train instanceof BatchLoader))
      throw new RetortError(
        `${ctx.where}: scheme cs-kd draws a same-class partner for every image from the training split: it needs the split in memory, not a stream`,
      );
    const labels = train.data.labels;
    const split = train.opts.indices ?? Uint32Array.from({ length: train.data.count }, (_, i) => i);
    const byClass = indicesByClass(labels, split);
    const base = buildOfflineTask({
      student: ctx.student,
      terms: ctx.stages[0]!.terms,
      data: ctx.dataInfo,
    });
    const shape = ctx.student.inputs[0]!.shape.slice(1) as [number, number, number];
    let partner: tf.Tensor2D | undefined;
    const task: TrainTask = {
      model: ctx.student,
      parts: base.parts ?? [],
      prepare(input: StepInput) {
        const b = train.makeBatch(classPartners(input.index, labels, byClass, input.epoch, exp.seed));
        partner = tf.tidy(
          () => ctx.student.apply(tf.tensor4d(b.x, [b.n, ...shape]), { training: true }) as tf.Tensor2D,
        );
      },
      release() {
        partner?.dispose();
        partner = undefined;
      },
      loss(input: StepInput) {
        const out = base.loss(input);
        const term = csKdLoss(out.logits as tf.Tensor2D, partner!, config.T);
        return {
          total: tf.add(out.total, tf.mul(term, config.lambda)) as tf.Scalar,
          terms: { ...out.terms, 'cs-kd': term },
          ...(out.logits ? { logits: out.logits } : {}),
        };
      },
    };
    log(
      `scheme cs-kd: each image with a same-class partner (${byClass.size} classes), T ${config.T}, lambda ${config.lambda}; losses ${ctx.stages[0]!.terms.map((t) => `${t.weight}*${t.label}`).join(' + ')} + ${config.lambda}*cs-kd`,
    );
    const { records, seconds } = await fitSingleStage(ctx, task);
    const stage = ctx.stages[0]!;
    return {
      stages: [
        {
          name: stage.name,
          epochs: stage.epochs,
          losses: [...stage.terms.map((t) => t.label), 'cs-kd'],
          seconds,
        },
      ],
      records,
    };
  },
};
