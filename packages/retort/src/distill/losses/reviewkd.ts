/**
 * ReviewKD: Chen, Liu, Zhao and Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021. Each
 * teacher level is taught by the student's features of that level AND of every deeper level: the
 * student's levels are walked from the deepest (the pooled vector, as a 1x1 map) to the shallowest,
 * and an attention-based fusion (ABF) merges each level with what the deeper ones produced, so a
 * shallow teacher map "reviews" knowledge the student holds in deeper layers. Per level:
 *
 *   x   = BN(conv1x1(s_i))                                (student channels -> mid, no bias)
 *   r   = nearest-resize(res_{i+1}, size of s_i)           (the deeper levels' fused map; absent at
 *   a   = sigmoid(conv1x1([x, r]) + b)  -> 2 maps           the deepest level)
 *   x   = x * a_0 + r * a_1
 *   x   = nearest-resize(x, teacher size) when they differ; res_i = x
 *   out = BN(conv3x3(x))                                  (mid -> teacher channels, no bias)
 *
 * and the hierarchical context loss (HCL) compares out with the teacher map at several scales:
 * mse + sum_k 2^-k mse(pool_l(out), pool_l(t)) for l = 4, 2, 1 (those smaller than the map), divided
 * by the sum of the weights; summed over levels. The loss is multiplied by min(epoch / warmup, 1)
 * (the first epoch counted 1, as mdistiller counts). BN uses batch statistics (ABF only runs in
 * training). As in mdistiller's CIFAR setting: the student's post-ReLU stage outputs, the teacher's
 * pre-ReLU stage outputs (the last block's sum before its ReLU), both networks' pooled vectors; mid
 * channels min(512, the student's pooled channels); conv kernels Kaiming-uniform with a = 1, the
 * attention conv PyTorch's default. Roles: stage1..stage3 and feat (three stages and the vector).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, type LayersModel } from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { adaptiveAvgPool, batchStatNorm, checkMaps } from './feature-ops.js';
import { partWeight, partWeights, torchUniform, weightPart } from './parts.js';
import { detach, type LossDescriptor, type TapShapes } from './types.js';

export const reviewkdSchema = z.strictObject({
  /** Epochs over which the loss's factor grows linearly to 1 (mdistiller: 20 of 240); 0: none. */
  warmup: z.number().min(0).default(20),
  /** ABF width; null: min(512, the student's pooled-vector channels) as the authors. */
  midChannels: z.number().int().positive().nullable().default(null),
});
export type ReviewkdConfig = z.output<typeof reviewkdSchema>;

export type ReviewRole = 'stage1' | 'stage2' | 'stage3' | 'feat';
/** Deepest first: the order ABF walks the student's levels. */
export const REVIEW_LEVELS = ['feat', 'stage3', 'stage2', 'stage1'] as const;
const ROLES = ['stage1', 'stage2', 'stage3', 'feat'] as const;

/** One ABF's weights (HWIO kernels); `attKernel`/`attBias` are absent at the deepest level. */
export interface AbfWeights {
  /** [1, 1, Cs, mid] */
  conv1: tf.Tensor4D;
  gamma1: tf.Tensor1D;
  beta1: tf.Tensor1D;
  /** [3, 3, mid, Ct] */
  conv2: tf.Tensor4D;
  gamma2: tf.Tensor1D;
  beta2: tf.Tensor1D;
  /** [1, 1, 2 mid, 2] and [2] */
  attKernel?: tf.Tensor4D;
  attBias?: tf.Tensor1D;
}

/** A pooled vector [N, C] as a 1x1 map [N, 1, 1, C]; maps unchanged. */
export function asMap(x: tf.Tensor): tf.Tensor4D {
  if (x.rank === 2) return tf.reshape(x, [x.shape[0]!, 1, 1, x.shape[1]!]);
  if (x.rank === 4) return x as tf.Tensor4D;
  throw new Error(`reviewkd: expected a map [N, H, W, C] or a vector [N, C], got [${x.shape.join(', ')}]`);
}

/** Source indices of F.interpolate(mode='nearest') along one axis: floor(dst * in / out). */
function nearestIndex(inSize: number, outSize: number): tf.Tensor1D {
  const idx = new Int32Array(outSize);
  for (let i = 0; i < outSize; i++) idx[i] = Math.min(inSize - 1, Math.floor((i * inSize) / outSize));
  return tf.tensor1d(idx, 'int32');
}

/**
 * Nearest-neighbour resize of [N, H, W, C] to [N, h, w, C] as two gathers, PyTorch's index rule.
 * Gathers, not tf.image.resizeNearestNeighbor: the latter's gradient in tfjs 4.22 is wrong when
 * enlarging a 1x1 map (measured against PyTorch), and a gather's gradient is an exact scatter-add.
 */
function resize(x: tf.Tensor4D, h: number, w: number): tf.Tensor4D {
  const [, H, W] = x.shape;
  if (H === h && W === w) return x;
  return tf.tidy(() => tf.gather(tf.gather(x, nearestIndex(H, h), 1), nearestIndex(W, w), 2));
}

/**
 * One ABF step: the student map s [N, H, W, Cs], the deeper levels' fused map (or none) and the
 * teacher's spatial size; returns the level's output [N, Ht, Wt, Ct] and the fused map it hands on.
 */
export function abf(
  s: tf.Tensor4D,
  res: tf.Tensor4D | null,
  w: AbfWeights,
  teacherHW: readonly [number, number],
): { out: tf.Tensor4D; res: tf.Tensor4D } {
  const [, h, wd] = s.shape;
  let x = batchStatNorm(tf.conv2d(s, w.conv1, 1, 'valid'), w.gamma1, w.beta1);
  if (res !== null) {
    if (w.attKernel === undefined || w.attBias === undefined)
      throw new Error('reviewkd: an ABF below the deepest level needs its attention conv');
    const r = resize(res, h, wd);
    const a = tf.sigmoid(tf.add(tf.conv2d(tf.concat([x, r], 3), w.attKernel, 1, 'valid'), w.attBias));
    const [a0, a1] = tf.split(a, 2, 3) as [tf.Tensor4D, tf.Tensor4D];
    x = tf.add(tf.mul(x, a0), tf.mul(r, a1));
  }
  x = resize(x, teacherHW[0], teacherHW[1]);
  const out = batchStatNorm(tf.conv2d(x, w.conv2, 1, 'same'), w.gamma2, w.beta2);
  return { out, res: x };
}

/** HCL of one level: MSE at full size and at 4x4, 2x2, 1x1 (those below the map's height). */
export function hcl(s: tf.Tensor4D, t: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const h = s.shape[1];
    let loss = tf.mean(tf.squaredDifference(s, t));
    let cnt = 1;
    let tot = 1;
    for (const l of [4, 2, 1]) {
      if (l >= h) continue;
      cnt /= 2;
      const d = tf.mean(tf.squaredDifference(adaptiveAvgPool(s, l, l), adaptiveAvgPool(t, l, l)));
      loss = tf.add(loss, tf.mul(d, cnt));
      tot += cnt;
    }
    return tf.div(loss, tot) as tf.Scalar;
  });
}

/** Levels deepest first; a level's student and teacher features, maps or pooled vectors. */
export type ReviewLevels = readonly tf.Tensor[];

/**
 * factor * sum over levels of HCL(ABF output, teacher), levels deepest first (REVIEW_LEVELS
 * order), one ABF per level (the first without attention). The teacher side is detached.
 */
export function reviewkdLoss(
  student: ReviewLevels,
  teacher: ReviewLevels,
  abfs: readonly AbfWeights[],
  factor = 1,
): tf.Scalar {
  if (student.length !== teacher.length || student.length !== abfs.length || student.length === 0)
    throw new Error(
      `reviewkdLoss: expected as many student levels, teacher levels and ABFs, got ${student.length}, ${teacher.length} and ${abfs.length}`,
    );
  return tf.tidy(() => {
    const s = student.map(asMap);
    const t = teacher.map((x) => asMap(detach(x)));
    checkMaps('reviewkdLoss', [...s, ...t]);
    let res: tf.Tensor4D | null = null;
    const terms: tf.Scalar[] = [];
    for (const [i, si] of s.entries()) {
      const ti = t[i]!;
      const r = abf(si, res, abfs[i]!, [ti.shape[1], ti.shape[2]]);
      if (r.out.shape[3] !== ti.shape[3])
        throw new Error(
          `reviewkdLoss: level ${i} gives ${r.out.shape[3]} channels, the teacher's map [${ti.shape.join(', ')}] has ${ti.shape[3]}`,
        );
      terms.push(hcl(r.out, ti));
      res = r.res;
    }
    return tf.mul(tf.addN(terms), factor) as tf.Scalar;
  });
}

/** mdistiller's min(epoch / warmup, 1) with epochs counted from 1 (`epoch` is 0-based here). */
export function reviewkdWarmup(epoch: number, warmup: number): number {
  return warmup > 0 ? Math.min((epoch + 1) / warmup, 1) : 1;
}

/** Kaiming-uniform with a = 1 (the authors' ABF convs): U(+-sqrt(3 / fan_in)). */
function kaimingA1(fanIn: number) {
  const b = Math.sqrt(3 / fanIn);
  return initializers.randomUniform({ minval: -b, maxval: b });
}

/** Per-example [H, W, C] of a tapped shape (a vector [C] is a 1x1 map). */
function mapShape(shape: readonly number[], where: string): [number, number, number] {
  if (shape.length === 1) return [1, 1, shape[0]!];
  if (shape.length === 3) return shape as [number, number, number];
  throw new Error(`${where}: expected a map [H, W, C] or a vector [C], got [${shape.join(', ')}]`);
}

export type ReviewkdParts = { readonly abfs: LayersModel };

/** The ABFs' weights for the tapped shapes, one part; weight names `<level>_<weight>`. */
export function makeAbfs(shapes: TapShapes<ReviewRole>, cfg: ReviewkdConfig): LayersModel {
  const sFeat = mapShape(shapes.student.feat, 'reviewkd (student feat)');
  const mid = cfg.midChannels ?? Math.min(512, sFeat[2]);
  const specs = REVIEW_LEVELS.flatMap((level, i) => {
    const cs = mapShape(shapes.student[level], `reviewkd (student ${level})`)[2];
    const ct = mapShape(shapes.teacher[level], `reviewkd (teacher ${level})`)[2];
    return [
      { name: `${level}_conv1`, shape: [1, 1, cs, mid], init: kaimingA1(cs) },
      { name: `${level}_gamma1`, shape: [mid], init: initializers.ones() },
      { name: `${level}_beta1`, shape: [mid], init: initializers.zeros() },
      { name: `${level}_conv2`, shape: [3, 3, mid, ct], init: kaimingA1(mid * 9) },
      { name: `${level}_gamma2`, shape: [ct], init: initializers.ones() },
      { name: `${level}_beta2`, shape: [ct], init: initializers.zeros() },
      ...(i === 0
        ? []
        : [
            { name: `${level}_att_kernel`, shape: [1, 1, 2 * mid, 2], init: torchUniform(2 * mid) },
            { name: `${level}_att_bias`, shape: [2], init: torchUniform(2 * mid) },
          ]),
    ];
  });
  return weightPart('reviewkd_abfs', specs);
}

/** The live ABF weights of a part made by makeAbfs, deepest level first. */
export function abfWeights(part: LayersModel): AbfWeights[] {
  const all = partWeights(part);
  return REVIEW_LEVELS.map((level): AbfWeights => {
    const get = (k: string) => partWeight(part, `${level}_${k}`);
    const att = all[`${level}_att_kernel`];
    const attBias = all[`${level}_att_bias`];
    return {
      conv1: get('conv1') as tf.Tensor4D,
      gamma1: get('gamma1') as tf.Tensor1D,
      beta1: get('beta1') as tf.Tensor1D,
      conv2: get('conv2') as tf.Tensor4D,
      gamma2: get('gamma2') as tf.Tensor1D,
      beta2: get('beta2') as tf.Tensor1D,
      ...(att && attBias ? { attKernel: att as tf.Tensor4D, attBias: attBias as tf.Tensor1D } : {}),
    };
  });
}

export const reviewkd: LossDescriptor<ReviewkdConfig, ReviewRole, ReviewkdParts> = {
  name: 'reviewkd',
  paper: {
    title: 'Distilling Knowledge via Knowledge Review',
    authors: 'Pengguang Chen, Shu Liu, Hengshuang Zhao, Jiaya Jia',
    venue: 'CVPR',
    year: 2021,
  },
  schema: reviewkdSchema,
  needs: { taps: { student: ROLES, teacher: ROLES } },
  parts: (shapes, cfg) => ({ abfs: makeAbfs(shapes, cfg) }),
  loss: (ctx) =>
    reviewkdLoss(
      REVIEW_LEVELS.map((l) => ctx.student.features[l]),
      REVIEW_LEVELS.map((l) => ctx.teacher.features[l]),
      abfWeights(ctx.parts.abfs),
      reviewkdWarmup(ctx.epoch, ctx.config.warmup),
    ),
};
