/**
 * IRG: Liu, Cao, Li, Yuan, Hu, Li, Duan, "Knowledge Distillation via Instance Relationship Graph",
 * CVPR 2019. A layer's knowledge is a graph over the batch: the instances' features are its
 * vertices, their pairwise distances its edges; and between two layers, each instance's move from
 * one to the other is the "transformation". The student matches the teacher's
 *
 *   vertex          the logits, mean((s - t)^2)                          (weight `vertex`, 0.1)
 *   edges           for each of `from`, `to` and `feat`: the squared     (weight `edge`, 5; mean
 *                   Euclidean distances between the batch's instances,   over the three layers)
 *                   diagonal 0, divided by the largest; MSE of matrices
 *   transformation  per instance, the squared distance between its       (weight `transform`, 5)
 *                   `from` and `to` maps, divided by the batch's largest;
 *                   MSE of the vectors
 *
 * with the defaults and the max-normalisation of the widely used PyTorch re-implementations of the
 * authors' Caffe code (distances normalised so student and teacher compare in shape, not scale).
 * For the transformation, `from` is average-pooled to `to`'s spatial size when larger, and of two
 * channel counts the larger is averaged over groups of consecutive channels down to the smaller
 * (pairs for the usual doubling); other shapes are refused.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { adaptiveAvgPool, checkBatch, flattenRows } from './feature-ops.js';
import { checkLogitPair } from './kd.js';
import { detach, type LossDescriptor } from './types.js';

export const irgSchema = z.strictObject({
  vertex: z.number().min(0).default(0.1),
  edge: z.number().min(0).default(5),
  transform: z.number().min(0).default(5),
});
export type IrgConfig = z.output<typeof irgSchema>;

const EPS = 1e-12;

/** Squared pairwise distances of the rows of x [N, ...], diagonal 0, divided by their maximum. */
export function irgEdges(x: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    const e = flattenRows(x);
    const n = e.shape[0];
    const sq = tf.sum(tf.square(e), 1);
    const d2 = tf.sub(
      tf.add(tf.reshape(sq, [n, 1]), tf.reshape(sq, [1, n])),
      tf.mul(2, tf.matMul(e, e, false, true)),
    );
    const d = tf.mul(tf.maximum(d2, EPS), tf.sub(1, tf.eye(n)));
    // The largest distance appears twice (d_ij = d_ji). PyTorch's max() shares its gradient
    // between tied entries, tfjs's gives it whole to each: take the max over the upper triangle,
    // where it is once, which gives PyTorch's gradient.
    const upper = tf.linalg.bandPart(tf.ones([n, n]), 0, -1);
    return tf.div(d, tf.max(tf.mul(d, tf.sub(upper, tf.eye(n))))) as tf.Tensor2D;
  });
}

/** [N, H, W, C] with C averaged over groups of `C / c` consecutive channels. */
function groupChannels(x: tf.Tensor4D, c: number): tf.Tensor4D {
  const [n, h, w, C] = x.shape;
  return tf.mean(tf.reshape(x, [n, h, w, c, C / c]), 4) as tf.Tensor4D;
}

/** Per instance, the squared distance from its `a` map to its `b` map [N], divided by the maximum. */
export function irgTransform(a: tf.Tensor4D, b: tf.Tensor4D, where = 'irg'): tf.Tensor1D {
  const [, ha, wa, ca] = a.shape;
  const [, hb, wb, cb] = b.shape;
  if (ha < hb || wa < wb || (ca !== cb && Math.max(ca, cb) % Math.min(ca, cb) !== 0))
    throw new Error(
      `${where}: no transformation from a [${a.shape.slice(1).join(', ')}] map to a [${b.shape.slice(1).join(', ')}] map (the first must be at least as large spatially, and one channel count a multiple of the other)`,
    );
  return tf.tidy(() => {
    let x = ha > hb || wa > wb ? adaptiveAvgPool(a, hb, wb) : a;
    let y = b;
    if (ca > cb) x = groupChannels(x, cb);
    if (cb > ca) y = groupChannels(y, ca);
    const d = tf.maximum(tf.sum(tf.square(tf.sub(flattenRows(x), flattenRows(y))), 1), EPS);
    return tf.div(d, tf.max(d)) as tf.Tensor1D;
  });
}

export interface IrgInputs {
  logits: tf.Tensor2D;
  from: tf.Tensor4D;
  to: tf.Tensor4D;
  feat: tf.Tensor;
}

/** The IRG loss and its three terms (unweighted); the teacher side is detached. */
export function irgTerms(
  s: IrgInputs,
  t: IrgInputs,
  cfg: IrgConfig,
): { loss: tf.Scalar; vertex: tf.Scalar; edge: tf.Scalar; transform: tf.Scalar } {
  checkLogitPair('irgLoss', s.logits, t.logits);
  for (const k of ['from', 'to', 'feat'] as const) checkBatch(`irgLoss (${k})`, s[k], t[k], 2);
  return tf.tidy(() => {
    const vertex = tf.mean(tf.squaredDifference(s.logits, detach(t.logits))) as tf.Scalar;
    const edgeOf = (k: 'from' | 'to' | 'feat') =>
      tf.mean(tf.squaredDifference(irgEdges(s[k]), irgEdges(detach(t[k]))));
    const edge = tf.div(tf.addN([edgeOf('from'), edgeOf('to'), edgeOf('feat')]), 3) as tf.Scalar;
    const transform = tf.mean(
      tf.squaredDifference(
        irgTransform(s.from, s.to, 'irg (student)'),
        irgTransform(detach(t.from), detach(t.to), 'irg (teacher)'),
      ),
    ) as tf.Scalar;
    const loss = tf.addN([
      tf.mul(cfg.vertex, vertex),
      tf.mul(cfg.edge, edge),
      tf.mul(cfg.transform, transform),
    ]) as tf.Scalar;
    return { loss, vertex, edge, transform };
  });
}

export function irgLoss(s: IrgInputs, t: IrgInputs, cfg: IrgConfig): tf.Scalar {
  const r = irgTerms(s, t, cfg);
  tf.dispose([r.vertex, r.edge, r.transform]);
  return r.loss;
}

type Role = 'from' | 'to' | 'feat';
const ROLES = ['from', 'to', 'feat'] as const;

const inputs = (o: { logits: tf.Tensor2D; features: Readonly<Record<Role, tf.Tensor>> }): IrgInputs => ({
  logits: o.logits,
  from: o.features.from as tf.Tensor4D,
  to: o.features.to as tf.Tensor4D,
  feat: o.features.feat,
});

export const irg: LossDescriptor<IrgConfig, Role> = {
  name: 'irg',
  paper: {
    title: 'Knowledge Distillation via Instance Relationship Graph',
    authors: 'Yufan Liu, Jiajiong Cao, Bing Li, Chunfeng Yuan, Weiming Hu, Yangxi Li, Yunqiang Duan',
    venue: 'CVPR',
    year: 2019,
  },
  schema: irgSchema,
  needs: { logits: true, taps: { student: ROLES, teacher: ROLES } },
  loss: (ctx) => irgLoss(inputs(ctx.student), inputs(ctx.teacher), ctx.config),
};
