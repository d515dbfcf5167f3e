/**
 * CRD: Tian, Krishnan and Isola, "Contrastive Representation Distillation", ICLR 2020. The student's
 * representation of an example should be closer to the teacher's representation of the same
 * example than to the teacher's representations of other examples: an NCE objective over one
 * positive and K negatives per example, in both directions (student embedding against the
 * teacher's memory bank, teacher embedding against the student's).
 *
 * As RepDistiller: trainable linear embeddings to feat_dim (128) on both sides, L2-normalised;
 * two memory banks [numExamples, feat_dim] initialised uniform in +-1/sqrt(feat_dim/3) and updated
 * after each step with momentum nce_m at the batch's examples (then renormalised); scores
 * exp(<bank row, embedding> / nce_t) divided by a constant Z = mean(score) * numExamples estimated
 * on the first batch; loss per direction -(log h(pos) + sum log(1 - h(neg))) / N with the NCE
 * posterior h(x) = x / (x + K / numExamples). Defaults nce_k 16384, nce_t 0.07, nce_m 0.5; beta 0.8.
 *
 * Negatives: K dataset indices per example drawn uniformly (the paper's sampling; RepDistiller's
 * default draws them from other classes instead). They come from util/rng.ts seeded by (seed, epoch,
 * example index), so a resumed run draws the same ones without sampler state.
 */

import * as tf from '@tensorflow/tfjs-core';
import { initializers, type LayersModel } from '@tensorflow/tfjs-layers';
import { gatherRowsDot, scatterRows } from 'retort-kd-native';
import { z } from 'zod';
import { Rng } from '../../util/rng.js';
import { checkBatch, flattenRows, l2Normalize } from './feature-ops.js';
import { partWeight, torchUniform, weightPart } from './parts.js';
import { detach, type LossDescriptor, type TapShapes } from './types.js';

export const crdSchema = z.strictObject({
  /** Embedding width (feat_dim). */
  featDim: z.number().int().positive().default(128),
  /** Negatives per example (nce_k). */
  nceK: z.number().int().positive().default(16384),
  /** Temperature (nce_t). */
  nceT: z.number().positive().default(0.07),
  /** Memory bank momentum (nce_m): new row = m * old + (1 - m) * embedding, renormalised. */
  nceM: z.number().min(0).max(1).default(0.5),
});
export type CrdConfig = z.output<typeof crdSchema>;

export interface CrdWeights {
  /** Student embedding [Ds, D], [D]; teacher embedding [Dt, D], [D]. */
  ws: tf.Tensor2D;
  bs: tf.Tensor1D;
  wt: tf.Tensor2D;
  bt: tf.Tensor1D;
}

export interface CrdBanks {
  /** Student-side and teacher-side memory banks [numExamples, D]. */
  memS: tf.Tensor2D;
  memT: tf.Tensor2D;
}

export interface CrdResult {
  loss: tf.Scalar;
  /** The normalisation constants used (estimated here when `z` was not given). */
  z: [number, number];
  /** Detached L2-normalised embeddings, for the bank update. */
  embS: tf.Tensor2D;
  embT: tf.Tensor2D;
}

const EPS = 1e-7;

/** -(sum log h(pos) + sum log(1 - h(neg))) / N for scores [N, K + 1] (positive first). */
function nceLoss(scores: tf.Tensor2D, numExamples: number): tf.Scalar {
  const [n, k1] = scores.shape;
  const k = k1 - 1;
  const kpn = k / numExamples;
  const pos = tf.slice(scores, [0, 0], [n, 1]);
  const neg = tf.slice(scores, [0, 1], [n, k]);
  const logD1 = tf.log(tf.div(pos, tf.add(pos, kpn + EPS)));
  const logD0 = tf.log(tf.div(kpn, tf.add(neg, kpn + EPS)));
  return tf.div(tf.neg(tf.add(tf.sum(logD1), tf.sum(logD0))), n) as tf.Scalar;
}

/**
 * exp(<bank[idx], e> / T): [N, K + 1]. The dot products come from gatherRowsDot, which never
 * materialises the [N, K + 1, D] gathered rows (268 MB per bank at N 128, K 4096, D 128; tfjs's
 * gather + matMul took ~20 s per step here, the fused kernel ~0.1 s).
 */
function scores(bank: tf.Tensor2D, idx: tf.Tensor2D, e: tf.Tensor2D, T: number): tf.Tensor2D {
  return tf.exp(tf.div(gatherRowsDot(bank, idx, e), T)) as tf.Tensor2D;
}

/**
 * The CRD loss for features [N, ...] (pooled vectors), idx [N, K + 1] int32 (each row: the example's
 * own index, then its negatives). `z` fixes the normalisation constants; when null they are
 * estimated from this batch (RepDistiller's first batch) and returned.
 */
export function crdLoss(
  student: tf.Tensor,
  teacher: tf.Tensor,
  w: CrdWeights,
  banks: CrdBanks,
  idx: tf.Tensor2D,
  z: [number, number] | null,
  cfg: Pick<CrdConfig, 'nceT'>,
): CrdResult {
  checkBatch('crdLoss', student, teacher);
  const numExamples = banks.memS.shape[0];
  if (idx.shape[0] !== student.shape[0] || idx.dtype !== 'int32')
    throw new Error(
      `crdLoss: idx must be int32 [N, K + 1] with N = ${student.shape[0]}, got ${idx.dtype} [${idx.shape.join(', ')}]`,
    );
  let zUsed: [number, number] = z ?? [0, 0];
  const out = tf.tidy(() => {
    const s = flattenRows(student);
    const t = flattenRows(detach(teacher));
    if (s.shape[1] !== w.ws.shape[0] || t.shape[1] !== w.wt.shape[0])
      throw new Error(
        `crdLoss: embeddings take ${w.ws.shape[0]} (student) and ${w.wt.shape[0]} (teacher) features, got ${s.shape[1]} and ${t.shape[1]}`,
      );
    const embS = l2Normalize(tf.add(tf.matMul(s, w.ws), w.bs)) as tf.Tensor2D;
    const embT = l2Normalize(tf.add(tf.matMul(t, w.wt), w.bt)) as tf.Tensor2D;
    const outS = scores(banks.memT, idx, embS, cfg.nceT); // student embedding vs teacher bank
    const outT = scores(banks.memS, idx, embT, cfg.nceT); // teacher embedding vs student bank
    if (z === null) {
      const m = (x: tf.Tensor) => tf.mean(x).dataSync()[0]! * numExamples;
      zUsed = [m(outS), m(outT)];
    }
    const loss = tf.add(
      nceLoss(tf.div(outS, zUsed[0]), numExamples),
      nceLoss(tf.div(outT, zUsed[1]), numExamples),
    );
    return { loss: loss as tf.Scalar, embS: detach(embS), embT: detach(embT) };
  });
  return { ...out, z: zUsed };
}

/** The banks' rows at `index` moved toward the new embeddings: normalize(m * row + (1 - m) * e). */
export function crdBankRows(
  bank: tf.Tensor2D,
  index: tf.Tensor1D,
  emb: tf.Tensor2D,
  momentum: number,
): tf.Tensor2D {
  return tf.tidy(
    () =>
      l2Normalize(tf.add(tf.mul(tf.gather(bank, index), momentum), tf.mul(emb, 1 - momentum))) as tf.Tensor2D,
  );
}

/** Writes rows into a bank variable (a new tensor with those rows replaced). */
function writeRows(bank: tf.Variable, index: Int32Array, rows: tf.Tensor2D): void {
  const next = tf.tidy(() => scatterRows(bank, tf.tensor1d(index, 'int32'), rows));
  bank.assign(next as tf.Tensor2D);
  next.dispose();
}

/** murmur3's 32-bit finaliser: a bijective mix, so distinct (seed, epoch, example) keys stay distinct. */
function fmix32(h: number): number {
  let x = h >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * [N, K + 1] int32: each example's own index, then K uniform draws from the seeded generator of
 * util/rng.ts keyed by (seed, epoch, example index), so the draws need no sampler state.
 */
export function crdIndices(
  indices: Uint32Array,
  k: number,
  numExamples: number,
  seed: number,
  epoch: number,
): tf.Tensor2D {
  const n = indices.length;
  const out = new Int32Array(n * (k + 1));
  const epochKey = fmix32(fmix32(seed) ^ epoch);
  for (let i = 0; i < n; i++) {
    const ex = indices[i]!;
    out[i * (k + 1)] = ex;
    const rng = new Rng(fmix32(epochKey ^ ex));
    for (let j = 1; j <= k; j++) out[i * (k + 1) + j] = rng.int(numExamples);
  }
  return tf.tensor2d(out, [n, k + 1], 'int32');
}

export type CrdParts = { readonly crd: LayersModel };

function makeParts(shapes: TapShapes<'feat'>, cfg: CrdConfig, numExamples: number, seed: number): CrdParts {
  const ds = shapes.student.feat.reduce((a, b) => a * b, 1);
  const dt = shapes.teacher.feat.reduce((a, b) => a * b, 1);
  const d = cfg.featDim;
  const stdv = 1 / Math.sqrt(d / 3);
  const bank = (k: number) => initializers.randomUniform({ minval: -stdv, maxval: stdv, seed: seed + k });
  return {
    crd: weightPart('crd', [
      { name: 'ws', shape: [ds, d], init: torchUniform(ds) },
      { name: 'bs', shape: [d], init: torchUniform(ds) },
      { name: 'wt', shape: [dt, d], init: torchUniform(dt) },
      { name: 'bt', shape: [d], init: torchUniform(dt) },
      { name: 'mem_s', shape: [numExamples, d], init: bank(1), trainable: false },
      { name: 'mem_t', shape: [numExamples, d], init: bank(2), trainable: false },
      // Normalisation constants; -1 = not estimated yet. Checkpointed with the banks.
      { name: 'z', shape: [2], init: initializers.constant({ value: -1 }), trainable: false },
      // The data seed, so that negatives are drawn the same way after a resume.
      { name: 'seed', shape: [1], init: initializers.constant({ value: seed }), trainable: false },
    ]),
  };
}

export const crd: LossDescriptor<CrdConfig, 'feat', CrdParts> = {
  name: 'crd',
  paper: {
    title: 'Contrastive Representation Distillation',
    authors: 'Yonglong Tian, Dilip Krishnan, Phillip Isola',
    venue: 'ICLR',
    year: 2020,
  },
  schema: crdSchema,
  needs: { taps: { student: ['feat'], teacher: ['feat'] }, indices: true },
  parts: (shapes, cfg, data) => {
    if (data.numExamples < 2)
      throw new Error(
        `crd: needs the training set size for its memory bank, got ${data.numExamples} (a streamed training split has no fixed size or item numbers: give CRD in-memory or file data)`,
      );
    return makeParts(shapes, cfg, data.numExamples, data.seed);
  },
  loss: (ctx) => {
    const part = ctx.parts.crd;
    const memS = partWeight(part, 'mem_s') as tf.Variable<tf.Rank.R2>;
    const memT = partWeight(part, 'mem_t') as tf.Variable<tf.Rank.R2>;
    const zVar = partWeight(part, 'z');
    const numExamples = memS.shape[0];
    const seed = partWeight(part, 'seed').dataSync()[0]!;
    const zNow = zVar.dataSync();
    const idx = crdIndices(
      ctx.indices,
      Math.min(ctx.config.nceK, numExamples - 1),
      numExamples,
      seed,
      ctx.epoch,
    );
    const r = crdLoss(
      ctx.student.features.feat,
      ctx.teacher.features.feat,
      {
        ws: partWeight(part, 'ws') as tf.Tensor2D,
        bs: partWeight(part, 'bs') as tf.Tensor1D,
        wt: partWeight(part, 'wt') as tf.Tensor2D,
        bt: partWeight(part, 'bt') as tf.Tensor1D,
      },
      { memS, memT },
      idx,
      zNow[0]! > 0 ? [zNow[0]!, zNow[1]!] : null,
      ctx.config,
    );
    if (zNow[0]! <= 0) {
      const zt = tf.tensor1d(r.z);
      zVar.assign(zt);
      zt.dispose();
    }
    // Bank update with this step's embeddings (RepDistiller updates in the forward pass too).
    const index = tf.tensor1d(Int32Array.from(ctx.indices), 'int32');
    const rowsS = crdBankRows(memS, index, r.embS, ctx.config.nceM);
    const rowsT = crdBankRows(memT, index, r.embT, ctx.config.nceM);
    writeRows(memS, Int32Array.from(ctx.indices), rowsS);
    writeRows(memT, Int32Array.from(ctx.indices), rowsT);
    tf.dispose([idx, index, rowsS, rowsT, r.embS, r.embT]);
    return r.loss;
  },
};
