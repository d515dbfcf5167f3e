/**
 * The eigendecomposition of a batch of small symmetric matrices as a differentiable tfjs op, for
 * what tfjs lacks (KDSVD's singular vectors: the right singular vectors of X are the eigenvectors
 * of X^T X). The forward pass runs cyclic Jacobi rotations in float64 (util/linalg.ts); the
 * backward pass is the eigen-decomposition's derivative for a symmetric matrix (M. B. Giles, "An
 * extended collection of matrix derivative results for forward and reverse mode algorithmic
 * differentiation", Oxford NA report 08/01, 2008, section 3.1):
 *   dA = V (diag(dl) + F o (V^T dV)) V^T,  F_ij = 1 / (l_j - l_i) for i != j, 0 on the diagonal,
 * symmetrised. Pairs of (numerically) equal eigenvalues get no term: their vectors are not
 * determined, and a loss that depends on which basis was picked has no gradient there.
 */
import * as tf from '@tensorflow/tfjs-core';
import { jacobiEig } from '../../util/linalg.js';

/**
 * jacobiEig stops once the off-diagonal squares sum below an absolute 1e-30, a level the rounding
 * noise of a large matrix never reaches (a 64 x 64 Gram of post-ReLU features ran all 100 sweeps,
 * ten times the work). Scaled to this Frobenius norm, that stop means a relative 1e-12: far below
 * float32 input resolution, and reached at any feature scale. Eigenvectors do not change with the
 * scale; eigenvalues are scaled back.
 */
const JACOBI_NORM = 1e-3;

/** One c x c matrix (row-major, float32 data): float64 values (descending) and column vectors. */
function eigOne(data: Float32Array, c: number): { values: Float64Array; vectors: Float64Array } {
  const m = new Float64Array(c * c);
  let frob = 0;
  for (let p = 0; p < c; p++)
    for (let q = 0; q < c; q++) {
      // Exactly symmetric, whatever float32 rounding did to the product that made it.
      const x = 0.5 * (data[p * c + q]! + data[q * c + p]!);
      m[p * c + q] = x;
      frob += x * x;
    }
  const scale = frob > 0 ? Math.sqrt(frob) / JACOBI_NORM : 1;
  for (let i = 0; i < c * c; i++) m[i]! /= scale;
  const r = jacobiEig(m, c);
  for (let i = 0; i < c; i++) r.values[i]! *= scale;
  return r;
}

/** Giles' reverse-mode rule for one matrix: gA from the gradients of its values and vectors. */
function eigGrad(
  lam: Float64Array,
  V: Float64Array,
  gValues: Float32Array,
  gVectors: Float32Array,
  c: number,
): Float64Array {
  const scale = Math.max(1e-300, ...Array.from(lam, Math.abs));
  // M = diag(g_l) + F o (V^T gV)
  const M = new Float64Array(c * c);
  for (let p = 0; p < c; p++) {
    M[p * c + p] = gValues[p]!;
    for (let q = 0; q < c; q++) {
      const gap = lam[q]! - lam[p]!;
      if (p === q || Math.abs(gap) <= 1e-10 * scale) continue;
      let dot = 0;
      for (let k = 0; k < c; k++) dot += V[k * c + p]! * gVectors[k * c + q]!;
      M[p * c + q] = dot / gap;
    }
  }
  // gA = sym(V M V^T)
  const VM = new Float64Array(c * c);
  for (let p = 0; p < c; p++)
    for (let q = 0; q < c; q++) {
      let s = 0;
      for (let k = 0; k < c; k++) s += V[p * c + k]! * M[k * c + q]!;
      VM[p * c + q] = s;
    }
  const out = new Float64Array(c * c);
  for (let p = 0; p < c; p++)
    for (let q = 0; q < c; q++) {
      let s = 0;
      for (let k = 0; k < c; k++) s += VM[p * c + k]! * V[q * c + k]!;
      out[p * c + q]! += 0.5 * s;
      out[q * c + p]! += 0.5 * s;
    }
  return out;
}

/**
 * [B, C, C] symmetric -> eigenvalues [B, C] (descending) and eigenvectors [B, C, C] (unit columns,
 * each with its largest-magnitude entry positive), differentiable with respect to the matrices.
 */
export function symEig(a: tf.Tensor3D): { values: tf.Tensor2D; vectors: tf.Tensor3D } {
  const [b, c, c2] = a.shape;
  if (c !== c2) throw new Error(`symEig: expected square matrices [B, C, C], got [${a.shape.join(', ')}]`);
  // customGrad returns one tensor: the vectors [B, C, C] with the values as a last column.
  const packedEig = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const data = (args[0] as tf.Tensor).dataSync() as Float32Array;
    const results = Array.from({ length: b }, (_, i) => eigOne(data.subarray(i * c * c, (i + 1) * c * c), c));
    const packed = new Float32Array(b * c * (c + 1));
    results.forEach((r, i) => {
      for (let p = 0; p < c; p++) {
        for (let q = 0; q < c; q++) packed[i * c * (c + 1) + p * (c + 1) + q] = r.vectors[p * c + q]!;
        packed[i * c * (c + 1) + p * (c + 1) + c] = r.values[p]!;
      }
    });
    return {
      value: tf.tensor3d(packed, [b, c, c + 1]),
      gradFunc: (dy: tf.Tensor) => {
        const g = dy.dataSync() as Float32Array;
        const out = new Float32Array(b * c * c);
        const gVal = new Float32Array(c);
        const gVec = new Float32Array(c * c);
        results.forEach((r, i) => {
          for (let p = 0; p < c; p++) {
            for (let q = 0; q < c; q++) gVec[p * c + q] = g[i * c * (c + 1) + p * (c + 1) + q]!;
            gVal[p] = g[i * c * (c + 1) + p * (c + 1) + c]!;
          }
          out.set(eigGrad(r.values, r.vectors, gVal, gVec, c), i * c * c);
        });
        return tf.tensor3d(out, [b, c, c]);
      },
    };
  });
  return tf.tidy(() => {
    const packed = packedEig(a) as tf.Tensor3D;
    return {
      vectors: tf.slice(packed, [0, 0, 0], [-1, c, c]) as tf.Tensor3D,
      values: tf.reshape(tf.slice(packed, [0, 0, c], [-1, c, 1]), [b, c]) as tf.Tensor2D,
    };
  });
}
