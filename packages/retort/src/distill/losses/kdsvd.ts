/**
 * KDSVD: Lee, Kim and Song, "Self-supervised Knowledge Distillation Using Singular Value
 * Decomposition", ECCV 2018, in RepDistiller's formulation. Each tapped map X = [N, HW, C] is
 * summarised by its top right singular vectors (k for the teacher; k + 3 for the student, so that
 * the student vector most like each teacher vector can be picked by |cosine| and given its sign),
 * scaled by the teacher's L2-normalised singular values. What is transferred is how consecutive
 * layers relate: rbf = exp(-(v_i[c] - v_{i-1}[c'])^2 / 8) over all channel pairs of two layers,
 * matched in squared error, summed over layer pairs, divided by N. The channel counts of student
 * and teacher must agree layer by layer (the alignment compares their vectors); map sizes may not.
 *
 * tfjs has no SVD: the right singular vectors are taken as the eigenvectors of X^T X (the `symEig`
 * op of retort-kd-native: double-precision Householder + QR, native, with Giles' gradient). At most min(HW, C) vectors exist, as in
 * torch.svd's reduced V. SVD leaves each vector's sign free and the loss depends on it (the
 * teacher's rbf mixes two layers' signs), so it is fixed: each vector's largest-magnitude entry is
 * positive. RepDistiller's signs are whatever LAPACK returns.
 */

import * as tf from '@tensorflow/tfjs-core';
import { symEig } from 'retort-kd-native';
import { z } from 'zod';
import { STAGES, type Stage } from './at.js';
import { l2Normalize } from './feature-ops.js';
import { detach, type LossDescriptor } from './types.js';

export const kdsvdSchema = z.strictObject({
  /** Teacher singular vectors per layer (RepDistiller's k; the student keeps k + 3). */
  k: z.number().int().positive().default(1),
});
export type KdsvdConfig = z.output<typeof kdsvdSchema>;

/**
 * The first min(n, HW, C) right singular vectors of each example's [HW, C] map, [N, C, m] (unit
 * columns), and its L2-normalised singular values [N, m].
 */
export function rightSingular(f: tf.Tensor4D, n: number): { v: tf.Tensor3D; s: tf.Tensor2D } {
  const [b, h, w, c] = f.shape;
  return tf.tidy(() => {
    const x = tf.reshape(f, [b, h * w, c]);
    const { values, vectors } = symEig(tf.matMul(x, x, true, false) as tf.Tensor3D);
    const m = Math.min(n, h * w, c);
    const v = tf.slice(vectors, [0, 0, 0], [-1, -1, m]);
    // relu: float32 rounding can leave a tiny negative eigenvalue of a rank-deficient Gram.
    const s = tf.sqrt(tf.relu(tf.slice(values, [0, 0], [-1, m])));
    return {
      v: tf.transpose(l2Normalize(tf.transpose(v, [0, 2, 1])), [0, 2, 1]) as tf.Tensor3D,
      s: l2Normalize(s) as tf.Tensor2D,
    };
  });
}

/**
 * RepDistiller's alignment as a constant [N, ks, kt] matrix: per teacher vector, +-1 at the
 * student vector of largest |cosine| (its sign), so that student vectors @ mask lines them up.
 */
function alignment(vs: tf.Tensor3D, vt: tf.Tensor3D): tf.Tensor3D {
  const cos = tf.matMul(vs, vt, true, false);
  const [b, ks, kt] = cos.shape as [number, number, number];
  const d = cos.dataSync();
  cos.dispose();
  const mask = new Float32Array(b * ks * kt);
  for (let i = 0; i < b; i++)
    for (let j = 0; j < kt; j++) {
      let best = 0;
      for (let r = 0; r < ks; r++) best = Math.max(best, Math.abs(d[(i * ks + r) * kt + j]!));
      for (let r = 0; r < ks; r++) {
        const x = d[(i * ks + r) * kt + j]!;
        if (Math.abs(x) === best) mask[(i * ks + r) * kt + j] = Math.sign(x);
      }
    }
  return tf.tensor3d(mask, [b, ks, kt]);
}

/**
 * exp(-(a[c] - b[c'])^2 / 8) for a [N, Ca, k], b [N, Cb, k]: [N, Ca, Cb, k]. square(sub), not
 * squaredDifference: tfjs 4.22's gradient of the latter does not reduce over broadcast axes.
 */
function rbf(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.exp(tf.div(tf.neg(tf.square(tf.sub(tf.expandDims(a, 2), tf.expandDims(b, 1)))), 8));
}

function checkLayers(students: readonly tf.Tensor[], teachers: readonly tf.Tensor[]): void {
  const show = (xs: readonly tf.Tensor[]) => xs.map((x) => `[${x.shape.join(', ')}]`).join(', ');
  const n = students[0]?.shape[0];
  const ok =
    students.length === teachers.length &&
    students.length >= 2 &&
    [...students, ...teachers].every((x) => x.rank === 4 && x.shape[0] === n) &&
    students.every((s, i) => s.shape[3] === teachers[i]!.shape[3]);
  if (!ok)
    throw new Error(
      `kdsvdLoss: expected as many student as teacher maps [N, H, W, C] (at least 2 layers), with one ` +
        `batch size and equal channel counts layer by layer (the alignment compares the sides' ` +
        `singular vectors), got student ${show(students)} and teacher ${show(teachers)}`,
    );
}

/**
 * sum over consecutive layer pairs of sum((rbf_s - rbf_t)^2), divided by N.
 * students, teachers: maps [N, H, W, C] per layer, layer i of both sides with the same C.
 * The teacher side gets no gradient.
 */
export function kdsvdLoss(
  students: readonly tf.Tensor4D[],
  teachers: readonly tf.Tensor4D[],
  cfg: KdsvdConfig,
): tf.Scalar {
  checkLayers(students, teachers);
  return tf.tidy(() => {
    let total: tf.Tensor = tf.scalar(0);
    let prev: { s: tf.Tensor; t: tf.Tensor } | null = null;
    students.forEach((sMap, i) => {
      const t = rightSingular(detach(teachers[i]!), cfg.k);
      const s = rightSingular(sMap, cfg.k + 3);
      const scale = tf.expandDims(t.s, 1); // [N, 1, k]
      const cur = { s: tf.mul(tf.matMul(s.v, alignment(s.v, t.v)), scale), t: tf.mul(t.v, scale) };
      if (prev !== null) {
        const diff = tf.sub(rbf(cur.s, prev.s), rbf(cur.t, prev.t));
        total = tf.add(total, tf.sum(tf.square(diff)));
      }
      prev = cur;
    });
    return tf.div(total, students[0]!.shape[0]) as tf.Scalar;
  });
}

export const kdsvd: LossDescriptor<KdsvdConfig, Stage> = {
  name: 'kdsvd',
  paper: {
    title: 'Self-supervised Knowledge Distillation Using Singular Value Decomposition',
    authors: 'Seung Hyun Lee, Dae Ha Kim, Byung Cheol Song',
    venue: 'ECCV',
    year: 2018,
  },
  schema: kdsvdSchema,
  needs: { taps: { student: STAGES, teacher: STAGES } },
  loss: (ctx) =>
    kdsvdLoss(
      STAGES.map((r) => ctx.student.features[r] as tf.Tensor4D),
      STAGES.map((r) => ctx.teacher.features[r] as tf.Tensor4D),
      ctx.config,
    ),
};
