/**
 * KDSVD: Lee, Kim and Song, "Self-supervised Knowledge Distillation Using Singular Value
 * Decomposition", ECCV 2018, with RepDistiller's formulation. Each tapped map X = [N, HW, C] is
 * summarised by its top right singular vectors (k = 1 for the teacher, k + 3 for the student, the
 * student's aligned to the teacher's by the largest |cosine| with its sign), scaled by the teacher's
 * normalised singular values; what is transferred is the RBF similarity exp(-(v_i - v_j)^2 / 8)
 * between the vectors of consecutive layers, matched in squared error, summed, divided by N.
 *
 * tfjs has no SVD: the right singular vectors are the eigenvectors of X^T X (C x C, small), found
 * here by cyclic Jacobi rotations in float64, with the eigenvector gradient of a symmetric matrix,
 * dA = V (F o (V^T dV)) V^T with F_ij = 1 / (l_j - l_i) (Giles 2008), as a custom gradient. SVD
 * leaves each vector's sign free; it is fixed so the largest-magnitude entry is positive (the golden
 * reference uses the same rule). The loss needs equal channel counts per layer (the alignment
 * compares student and teacher vectors), as RepDistiller.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { jacobiEig } from '../../util/linalg.js';
import { STAGES, type Stage } from './at.js';
import { checkMaps, l2Normalize } from './feature-ops.js';
import { detach, type LossDescriptor } from './types.js';

export const kdsvdSchema = z.strictObject({
  /** Teacher singular vectors per layer (the student keeps k + 3 for the alignment). */
  k: z.number().int().positive().default(1),
});
export type KdsvdConfig = z.output<typeof kdsvdSchema>;

/** [B, C, C] symmetric -> eigenvalues [B, C] (descending) and eigenvectors [B, C, C] (columns). */
export function symEig(a: tf.Tensor3D): { values: tf.Tensor2D; vectors: tf.Tensor3D } {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const [b, c] = x.shape as [number, number, number];
    const data = x.dataSync();
    const vals = new Float32Array(b * c);
    const vecs = new Float32Array(b * c * c);
    const vals64: Float64Array[] = [];
    const vecs64: Float64Array[] = [];
    for (let i = 0; i < b; i++) {
      const m = Float64Array.from(data.subarray(i * c * c, (i + 1) * c * c));
      for (let p = 0; p < c; p++)
        for (let q = p + 1; q < c; q++) m[p * c + q] = m[q * c + p] = 0.5 * (m[p * c + q]! + m[q * c + p]!);
      const r = jacobiEig(m, c);
      vals64.push(r.values);
      vecs64.push(r.vectors);
      vals.set(r.values, i * c);
      vecs.set(r.vectors, i * c * c);
    }
    const values = tf.tensor2d(vals, [b, c]);
    const vectors = tf.tensor3d(vecs, [b, c, c]);
    save([values, vectors]);
    // Both outputs travel as one tensor [B, C, C + 1] (customGrad returns one value): vectors, then
    // the values as a last column.
    const value = tf.concat([vectors, tf.expandDims(values, 2)], 2);
    return {
      value,
      gradFunc: (dy: tf.Tensor) => {
        const g = dy.dataSync();
        const out = new Float32Array(b * c * c);
        for (let i = 0; i < b; i++) {
          const lam = vals64[i]!;
          const V = vecs64[i]!;
          const scale = Math.max(1e-300, ...Array.from(lam, Math.abs));
          // M = diag(g_lambda) + F o (V^T gV)
          const M = new Float64Array(c * c);
          for (let p = 0; p < c; p++) {
            for (let q = 0; q < c; q++) {
              if (p === q) {
                M[p * c + q] = g[i * c * (c + 1) + p * (c + 1) + c]!;
                continue;
              }
              const gap = lam[q]! - lam[p]!;
              if (Math.abs(gap) <= 1e-10 * scale) continue; // repeated eigenvalues: no defined direction
              let dot = 0;
              for (let k = 0; k < c; k++) dot += V[k * c + p]! * g[i * c * (c + 1) + k * (c + 1) + q]!;
              M[p * c + q] = dot / gap;
            }
          }
          // gA = V M V^T, symmetrised.
          const VM = new Float64Array(c * c);
          for (let p = 0; p < c; p++)
            for (let q = 0; q < c; q++) {
              let s = 0;
              for (let k = 0; k < c; k++) s += V[p * c + k]! * M[k * c + q]!;
              VM[p * c + q] = s;
            }
          for (let p = 0; p < c; p++)
            for (let q = 0; q < c; q++) {
              let s = 0;
              for (let k = 0; k < c; k++) s += VM[p * c + k]! * V[q * c + k]!;
              out[i * c * c + p * c + q]! += 0.5 * s;
              out[i * c * c + q * c + p]! += 0.5 * s;
            }
        }
        return tf.tensor3d(out, [b, c, c]);
      },
    };
  });
  const packed = f(a) as tf.Tensor3D;
  const c = a.shape[1];
  const vectors = tf.slice(packed, [0, 0, 0], [-1, c, c]) as tf.Tensor3D;
  const values = tf.reshape(tf.slice(packed, [0, 0, c], [-1, c, 1]), [a.shape[0], c]) as tf.Tensor2D;
  return { values, vectors };
}

/** Top-n right singular vectors [N, C, n] (unit columns) and normalised singular values [N, n]. */
function rightSingular(f: tf.Tensor4D, n: number): { v: tf.Tensor3D; s: tf.Tensor2D } {
  const [b, h, w, c] = f.shape;
  const x = tf.reshape(f, [b, h * w, c]);
  const { values, vectors } = symEig(tf.matMul(x, x, true, false) as tf.Tensor3D);
  const k = Math.min(n, c);
  const v = tf.slice(vectors, [0, 0, 0], [-1, -1, k]);
  const s = tf.sqrt(tf.relu(tf.slice(values, [0, 0], [-1, k])));
  return {
    v: tf.transpose(l2Normalize(tf.transpose(v, [0, 2, 1])), [0, 2, 1]) as tf.Tensor3D,
    s: l2Normalize(s) as tf.Tensor2D,
  };
}

/** The alignment of RepDistiller's align_rsv: per teacher vector, the student vector of largest |cos|, with its sign. */
function alignmentMask(vs: tf.Tensor3D, vt: tf.Tensor3D): tf.Tensor3D {
  const cos = tf.matMul(vs, vt, true, false); // [N, ks, kt]
  const [b, ks, kt] = cos.shape as [number, number, number];
  const d = cos.dataSync();
  const mask = new Float32Array(b * ks * kt);
  for (let i = 0; i < b; i++)
    for (let j = 0; j < kt; j++) {
      let best = 0;
      for (let r = 0; r < ks; r++) best = Math.max(best, Math.abs(d[i * ks * kt + r * kt + j]!));
      for (let r = 0; r < ks; r++) {
        const x = d[i * ks * kt + r * kt + j]!;
        if (Math.abs(x) === best) mask[i * ks * kt + r * kt + j] = Math.sign(x);
      }
    }
  cos.dispose();
  return tf.tensor3d(mask, [b, ks, kt]);
}

/** The KDSVD loss over consecutive layers (maps [N, H, W, C], equal C per layer on both sides). */
export function kdsvdLoss(
  students: readonly tf.Tensor4D[],
  teachers: readonly tf.Tensor4D[],
  cfg: KdsvdConfig,
): tf.Scalar {
  if (students.length !== teachers.length || students.length < 2)
    throw new Error(
      `kdsvdLoss: expected as many student as teacher maps (>= 2), got ${students.length} and ${teachers.length}`,
    );
  checkMaps('kdsvdLoss', [...students, ...teachers]);
  students.forEach((s, i) => {
    if (s.shape[3] !== teachers[i]!.shape[3])
      throw new Error(
        `kdsvdLoss: layer ${i} has ${s.shape[3]} student and ${teachers[i]!.shape[3]} teacher channels; KDSVD needs equal channel counts`,
      );
  });
  return tf.tidy(() => {
    const terms: tf.Tensor[] = [];
    let prevS: tf.Tensor | null = null;
    let prevT: tf.Tensor | null = null;
    students.forEach((sMap, i) => {
      const t = rightSingular(detach(teachers[i]!), cfg.k);
      const s = rightSingular(sMap, cfg.k + 3);
      const vs = tf.matMul(s.v, detach(alignmentMask(s.v, t.v)));
      const st = tf.expandDims(t.s, 1);
      const vt = tf.mul(t.v, st);
      const vsScaled = tf.mul(vs, st);
      if (prevS !== null && prevT !== null) {
        const rbf = (a: tf.Tensor, b: tf.Tensor) =>
          tf.exp(tf.div(tf.neg(tf.square(tf.sub(tf.expandDims(a, 2), tf.expandDims(b, 1)))), 8));
        terms.push(tf.sum(tf.square(tf.sub(rbf(vsScaled, prevS), detach(rbf(vt, prevT))))));
      }
      prevS = vsScaled;
      prevT = vt;
    });
    return tf.div(
      terms.reduce((a, b) => tf.add(a, b)),
      students[0]!.shape[0],
    ) as tf.Scalar;
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
