/**
 * SemCKD: Chen, Mei, Zhang, Wang, Wang, Feng and Chen, "Cross-Layer Distillation with Semantic
 * Calibration", AAAI 2021. Instead of fixing which student layer learns from which teacher layer,
 * every student layer i is matched to every teacher layer j, and a learned attention decides, per
 * example, how much each pair counts:
 *
 *   S(f)        = F F^T, the batch's similarity matrix of a layer (F: the flattened maps, [N, N]);
 *                 row n describes example n by its similarity to the others
 *   q_i, k_j    = l2norm(MLP(S(f))) per student layer (query) and teacher layer (key), MLP =
 *                 Linear(N, 2d) -> ReLU -> Linear(2d, d), d = N / factor
 *   a[n, i, :]  = softmax_j(q_i[n] . k_j[n])
 *   e[n, i, j]  = mean over the map of (R_ij(s_i) - t_j)^2, the larger of the two maps first
 *                 average-pooled to the other's size; R_ij = conv1x1 -> BN -> ReLU -> conv3x3 -> BN
 *                 -> ReLU -> conv1x1 (no biases, 2 C_t middle channels), one per pair
 *   loss        = sum(a * e) / (N * number of student layers)
 *
 * as the authors' code (their SelfA, AAEmbed, MLPEmbed and SemCKDLoss; their beta 400 is the
 * experiment weight). The teacher's maps are constants; its keys' MLPs still train (through the
 * attention). Because the embeddings read rows of length N, the parts are sized by the batch size
 * (every training step has exactly that many examples) and a different batch is refused. BN uses
 * batch statistics (training only). Roles stage1..stage3 on both sides.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, type LayersModel } from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { STAGES, type Stage } from './at.js';
import { adaptiveAvgPool, batchStatNorm, checkMaps, flattenRows, l2Normalize } from './feature-ops.js';
import { partWeight, torchUniform, weightPart } from './parts.js';
import { type DataInfo, detach, type LossDescriptor, type TapShapes } from './types.js';

export const semckdSchema = z.strictObject({
  /** Embedding width d = batch size / factor (the authors' 4). */
  factor: z.number().int().positive().default(4),
});
export type SemckdConfig = z.output<typeof semckdSchema>;

/** MLPEmbed: dense kernels [in, out] (tfjs layout), biases [out]. */
export interface MlpWeights {
  w1: tf.Tensor2D;
  b1: tf.Tensor1D;
  w2: tf.Tensor2D;
  b2: tf.Tensor1D;
}

/** AAEmbed: three HWIO kernels and two BNs. */
export interface PairRegressor {
  conv1: tf.Tensor4D;
  gamma1: tf.Tensor1D;
  beta1: tf.Tensor1D;
  conv2: tf.Tensor4D;
  gamma2: tf.Tensor1D;
  beta2: tf.Tensor1D;
  conv3: tf.Tensor4D;
}

export interface SemckdWeights {
  /** One per student layer. */
  query: readonly MlpWeights[];
  /** One per teacher layer. */
  key: readonly MlpWeights[];
  /** [student layer][teacher layer]. */
  regressors: readonly (readonly PairRegressor[])[];
}

/** Rows of the batch's similarity matrix of a map, [N, N]. */
function similarity(f: tf.Tensor): tf.Tensor2D {
  const x = flattenRows(f);
  return tf.matMul(x, x, false, true);
}

function embed(x: tf.Tensor2D, w: MlpWeights): tf.Tensor2D {
  const h = tf.relu(tf.add(tf.matMul(x, w.w1), w.b1));
  return l2Normalize(tf.add(tf.matMul(h, w.w2), w.b2)) as tf.Tensor2D;
}

function regress(x: tf.Tensor4D, r: PairRegressor): tf.Tensor4D {
  const a = tf.relu(batchStatNorm(tf.conv2d(x, r.conv1, 1, 'valid'), r.gamma1, r.beta1));
  const b = tf.relu(batchStatNorm(tf.conv2d(a, r.conv2, 1, 'same'), r.gamma2, r.beta2));
  return tf.conv2d(b, r.conv3, 1, 'valid');
}

/** The per-example attention [N, S, T] of student layers over teacher layers. */
export function semckdAttention(
  student: readonly tf.Tensor4D[],
  teacher: readonly tf.Tensor4D[],
  w: Pick<SemckdWeights, 'query' | 'key'>,
): tf.Tensor3D {
  return tf.tidy(() => {
    const q = tf.stack(
      student.map((s, i) => embed(similarity(s), w.query[i]!)),
      1,
    ); // [N, S, d]
    const k = tf.stack(
      teacher.map((t, j) => embed(similarity(t), w.key[j]!)),
      1,
    ); // [N, T, d]
    return tf.softmax(tf.matMul(q, k, false, true)) as tf.Tensor3D;
  });
}

/** SemCKD's loss for student maps s_i and teacher maps t_j [N, H, W, C]; the teacher is detached. */
export function semckdLoss(
  student: readonly tf.Tensor4D[],
  teacher: readonly tf.Tensor4D[],
  w: SemckdWeights,
): tf.Scalar {
  checkMaps('semckdLoss', [...student, ...teacher]);
  const n = student[0]!.shape[0];
  const S = student.length;
  const T = teacher.length;
  if (w.query.length !== S || w.key.length !== T || w.regressors.length !== S)
    throw new Error(
      `semckdLoss: ${S} student and ${T} teacher layers need ${S} query embeddings, ${T} key embeddings and ${S} x ${T} regressors; got ${w.query.length}, ${w.key.length} and ${w.regressors.length} rows`,
    );
  const rows = w.query[0]!.w1.shape[0];
  if (rows !== n)
    throw new Error(
      `semckd: its embeddings read the batch's similarity rows and were sized for batches of ${rows}; got a batch of ${n} (SemCKD needs one batch size throughout training)`,
    );
  return tf.tidy(() => {
    const t = teacher.map((x) => detach(x));
    const att = semckdAttention(student, t, w);
    const errs: tf.Tensor1D[] = [];
    for (const [i, s] of student.entries()) {
      for (const [j, tj] of t.entries()) {
        const [, hs, ws] = s.shape;
        const [, ht, wt] = tj.shape;
        const [x, y] = hs > ht ? [adaptiveAvgPool(s, ht, wt), tj] : [s, adaptiveAvgPool(tj, hs, ws)];
        const r = w.regressors[i]?.[j];
        if (r === undefined)
          throw new Error(`semckdLoss: no regressor for student layer ${i}, teacher layer ${j}`);
        errs.push(tf.mean(flattenRows(tf.squaredDifference(regress(x, r), y)), 1) as tf.Tensor1D);
      }
    }
    const e = tf.reshape(tf.stack(errs, 1), [n, S, T]);
    return tf.div(tf.sum(tf.mul(att, e)), n * S) as tf.Scalar;
  });
}

export type SemckdParts = { readonly semckd: LayersModel };

/** Every weight of SemCKD for the tapped shapes and batch size, one part. */
export function makeSemckd(shapes: TapShapes<Stage>, cfg: SemckdConfig, data: DataInfo): LayersModel {
  const n = data.batchSize;
  const d = Math.floor(n / cfg.factor);
  if (!(d >= 1))
    throw new Error(
      `semckd: batch size ${n} / factor ${cfg.factor} leaves no embedding width (needs data.batchSize >= factor)`,
    );
  const mlp = (p: string) => [
    { name: `${p}_w1`, shape: [n, 2 * d], init: torchUniform(n) },
    { name: `${p}_b1`, shape: [2 * d], init: torchUniform(n) },
    { name: `${p}_w2`, shape: [2 * d, d], init: torchUniform(2 * d) },
    { name: `${p}_b2`, shape: [d], init: torchUniform(2 * d) },
  ];
  const channels = (s: readonly number[], where: string) => {
    if (s.length !== 3) throw new Error(`semckd: the ${where} is not a map [H, W, C]: [${s.join(', ')}]`);
    return s[2]!;
  };
  const specs = STAGES.flatMap((si, i) => [
    ...mlp(`query${i}`),
    ...mlp(`key${i}`),
    ...STAGES.flatMap((tj, j) => {
      const cs = channels(shapes.student[si], `student's ${si}`);
      const ct = channels(shapes.teacher[tj], `teacher's ${tj}`);
      const m = 2 * ct;
      const p = `reg${i}${j}`;
      return [
        { name: `${p}_conv1`, shape: [1, 1, cs, m], init: torchUniform(cs) },
        { name: `${p}_gamma1`, shape: [m], init: initializers.ones() },
        { name: `${p}_beta1`, shape: [m], init: initializers.zeros() },
        { name: `${p}_conv2`, shape: [3, 3, m, m], init: torchUniform(9 * m) },
        { name: `${p}_gamma2`, shape: [m], init: initializers.ones() },
        { name: `${p}_beta2`, shape: [m], init: initializers.zeros() },
        { name: `${p}_conv3`, shape: [1, 1, m, ct], init: torchUniform(m) },
      ];
    }),
  ]);
  return weightPart('semckd', specs);
}

/** The live weights of a part made by makeSemckd. */
export function semckdWeights(part: LayersModel): SemckdWeights {
  const get = (k: string) => partWeight(part, k);
  const mlp = (p: string): MlpWeights => ({
    w1: get(`${p}_w1`) as tf.Tensor2D,
    b1: get(`${p}_b1`) as tf.Tensor1D,
    w2: get(`${p}_w2`) as tf.Tensor2D,
    b2: get(`${p}_b2`) as tf.Tensor1D,
  });
  const reg = (p: string): PairRegressor => ({
    conv1: get(`${p}_conv1`) as tf.Tensor4D,
    gamma1: get(`${p}_gamma1`) as tf.Tensor1D,
    beta1: get(`${p}_beta1`) as tf.Tensor1D,
    conv2: get(`${p}_conv2`) as tf.Tensor4D,
    gamma2: get(`${p}_gamma2`) as tf.Tensor1D,
    beta2: get(`${p}_beta2`) as tf.Tensor1D,
    conv3: get(`${p}_conv3`) as tf.Tensor4D,
  });
  return {
    query: STAGES.map((_, i) => mlp(`query${i}`)),
    key: STAGES.map((_, j) => mlp(`key${j}`)),
    regressors: STAGES.map((_, i) => STAGES.map((_, j) => reg(`reg${i}${j}`))),
  };
}

export const semckd: LossDescriptor<SemckdConfig, Stage, SemckdParts> = {
  name: 'semckd',
  paper: {
    title: 'Cross-Layer Distillation with Semantic Calibration',
    authors: 'Defang Chen, Jian-Ping Mei, Yuan Zhang, Can Wang, Zhe Wang, Yan Feng, Chun Chen',
    venue: 'AAAI',
    year: 2021,
  },
  schema: semckdSchema,
  needs: { taps: { student: STAGES, teacher: STAGES } },
  parts: (shapes, cfg, data) => ({ semckd: makeSemckd(shapes, cfg, data) }),
  loss: (ctx) =>
    semckdLoss(
      STAGES.map((r) => ctx.student.features[r] as tf.Tensor4D),
      STAGES.map((r) => ctx.teacher.features[r] as tf.Tensor4D),
      semckdWeights(ctx.parts.semckd),
    ),
};
