/**
 * The eigendecomposition of a batch of symmetric matrices as a differentiable tfjs op, for what
 * tfjs lacks (KDSVD's singular vectors are the eigenvectors of X^T X; low-rank factorization).
 *
 * - `RetortSymEig` {x: [B, n, n]} -> [values [B, n] (descending), valuesLo [B, n], vectors [B, n, n]]:
 *   computed in double by Householder tridiagonalization and implicit symmetric QR with Wilkinson
 *   shifts (Golub and Van Loan, "Matrix Computations", 4th ed., 8.3), rounded once. `vectors` holds
 *   unit eigenvectors as columns, each with its largest-magnitude entry (the first, on ties)
 *   positive; `valuesLo` is each value's float32 rounding remainder, so the gradient can form
 *   1 / (l_q - l_p) from double-precision values (float32 gaps would cost up to ~1e-7 max|l| / gap).
 * - `RetortSymEigGrad` {values, valuesLo, vectors, gValues, gVectors} -> gx: Giles' reverse-mode rule
 *   (M. B. Giles, "An extended collection of matrix derivative results for forward and reverse mode
 *   algorithmic differentiation", Oxford NA report 08/01, 2008, 3.1):
 *   gA = sym(V (diag(gl) + F o (V^T gV)) V^T), F_pq = 1 / (l_q - l_p) off the diagonal, 0 where the
 *   two values are equal to 1e-10 max|l| (their vectors are not determined). Columns q with no
 *   gradient are skipped: a loss on the top m vectors costs 3 n^2 m per matrix.
 *
 * The JS kernels here are registered for `cpu` (the reference, and `native`'s fallback); the native
 * ones are native/RetortSymEig.cc and native/RetortSymEigGrad.cc, the same algorithm line for line.
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import {
  engine,
  getGradient,
  getKernel,
  registerGradient,
  registerKernel,
  type Tensor,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { f32, type KernelArgs } from './js_kernel.js';

export const SYM_EIG = 'RetortSymEig';
export const SYM_EIG_GRAD = 'RetortSymEigGrad';

/** [B, n] of a [B, n, n] shape; throws naming the shape otherwise. */
export function symEigLayout(shape: readonly number[], what = 'symEig'): [number, number] {
  const [b, n, n2] = shape;
  if (shape.length !== 3 || b === undefined || n === undefined || n !== n2 || n < 1)
    throw new Error(`${what}: expected square matrices [B, n, n], got [${shape.join(', ')}]`);
  return [b, n];
}

/** Q^T a Q = tridiagonal (d, e) for the symmetric a (n x n row-major, overwritten); qt = Q^T. */
function householderTridiagonal(
  a: Float64Array,
  qt: Float64Array,
  d: Float64Array,
  e: Float64Array,
  n: number,
) {
  qt.fill(0);
  for (let i = 0; i < n; i++) qt[i * n + i] = 1;
  const v = new Float64Array(n);
  const p = new Float64Array(n);
  for (let k = 0; k + 2 < n; k++) {
    const m = n - k - 1;
    const r0 = k * n + k + 1;
    let tail = 0;
    for (let i = 1; i < m; i++) tail += a[r0 + i]! * a[r0 + i]!;
    if (tail === 0) continue;
    for (let i = 0; i < m; i++) v[i] = a[r0 + i]!;
    const alpha = -Math.sign(v[0]! || 1) * Math.sqrt(tail + v[0]! * v[0]!);
    v[0]! -= alpha;
    const beta = 2 / (tail + v[0]! * v[0]!);
    const s0 = (k + 1) * n + k + 1;
    let vp = 0;
    for (let i = 0; i < m; i++) {
      let acc = 0;
      for (let j = 0; j < m; j++) acc += a[s0 + i * n + j]! * v[j]!;
      p[i] = beta * acc;
      vp += v[i]! * p[i]!;
    }
    const kk = 0.5 * beta * vp;
    for (let i = 0; i < m; i++) p[i]! -= kk * v[i]!;
    for (let i = 0; i < m; i++) {
      const vi = v[i]!;
      const pi = p[i]!;
      for (let j = 0; j < m; j++) a[s0 + i * n + j]! -= vi * p[j]! + pi * v[j]!;
    }
    a[k * n + k + 1] = alpha;
    a[(k + 1) * n + k] = alpha;
    for (let i = 1; i < m; i++) {
      a[k * n + k + 1 + i] = 0;
      a[(k + 1 + i) * n + k] = 0;
    }
    const q0 = (k + 1) * n;
    p.fill(0);
    for (let j = 0; j < m; j++) {
      const vj = v[j]!;
      for (let i = 0; i < n; i++) p[i]! += vj * qt[q0 + j * n + i]!;
    }
    for (let j = 0; j < m; j++) {
      const f = beta * v[j]!;
      for (let i = 0; i < n; i++) qt[q0 + j * n + i]! -= f * p[i]!;
    }
  }
  for (let i = 0; i < n; i++) {
    d[i] = a[i * n + i]!;
    e[i] = i + 1 < n ? a[i * n + i + 1]! : 0;
  }
}

/** Implicit symmetric QR steps with Wilkinson shifts on (d, e), rotating the rows of qt. */
function tridiagonalQr(d: Float64Array, e: Float64Array, qt: Float64Array, n: number): boolean {
  const eps = 2 ** -52;
  const tiny = 2 ** -1022 / eps;
  const negligible = (i: number) => Math.abs(e[i]!) <= eps * (Math.abs(d[i]!) + Math.abs(d[i + 1]!)) + tiny;
  let hi = n - 1;
  let steps = 0;
  while (hi > 0) {
    if (negligible(hi - 1)) {
      e[hi - 1] = 0;
      hi--;
      continue;
    }
    let lo = hi - 1;
    while (lo > 0 && !negligible(lo - 1)) lo--;
    if (lo > 0) e[lo - 1] = 0;
    if (++steps > 60 * n) return false;
    const delta = 0.5 * (d[hi - 1]! - d[hi]!);
    const eh = e[hi - 1]!;
    const root = Math.hypot(delta, eh);
    const mu = d[hi]! - (eh * eh) / (delta + (delta < 0 || Object.is(delta, -0) ? -root : root));
    let x = d[lo]! - mu;
    let z = e[lo]!;
    for (let k = lo; k < hi; k++) {
      const r = Math.hypot(x, z);
      const c = r === 0 ? 1 : x / r;
      const s = r === 0 ? 0 : z / r;
      if (k > lo) e[k - 1] = r;
      const dk = d[k]!;
      const f = e[k]!;
      const g = d[k + 1]!;
      d[k] = c * c * dk + 2 * c * s * f + s * s * g;
      d[k + 1] = s * s * dk - 2 * c * s * f + c * c * g;
      e[k] = c * s * (g - dk) + (c * c - s * s) * f;
      if (k + 1 < hi) {
        z = s * e[k + 1]!;
        e[k + 1]! *= c;
        x = e[k]!;
      }
      const qk = k * n;
      const ql = qk + n;
      for (let i = 0; i < n; i++) {
        const a0 = qt[qk + i]!;
        const a1 = qt[ql + i]!;
        qt[qk + i] = c * a0 + s * a1;
        qt[ql + i] = c * a1 - s * a0;
      }
    }
  }
  return true;
}

/**
 * One symmetric n x n matrix (row-major; symmetrised as (x + x^T) / 2) in double: values
 * descending and vectors as columns (vectors[k * n + j] is entry k of vector j), signs as above.
 */
export function symEigF64(
  x: ArrayLike<number>,
  n: number,
): { values: Float64Array; vectors: Float64Array; converged: boolean } {
  const a = new Float64Array(n * n);
  let amax = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      const y = 0.5 * (x[i * n + j]! + x[j * n + i]!);
      a[i * n + j] = y;
      amax = Math.max(amax, Math.abs(y));
    }
  const scale = amax > 0 ? amax : 1;
  for (let i = 0; i < n * n; i++) a[i]! /= scale;
  const qt = new Float64Array(n * n);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  householderTridiagonal(a, qt, d, e, n);
  const converged = tridiagonalQr(d, e, qt, n);
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => d[j]! - d[i]!);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, j) => {
    values[j] = d[src]! * scale;
    let big = 0;
    for (let k = 0; k < n; k++) if (Math.abs(qt[src * n + k]!) > Math.abs(big)) big = qt[src * n + k]!;
    const sign = big < 0 ? -1 : 1;
    for (let k = 0; k < n; k++) vectors[k * n + j] = sign * qt[src * n + k]!;
  });
  return { values, vectors, converged };
}

function eigJs({ inputs, backend: b }: KernelArgs): TensorInfo[] {
  const backend = b as MathBackendCPU;
  const x = inputs['x']!;
  const [batch, n] = symEigLayout(x.shape);
  const X = f32(backend, x, SYM_EIG);
  const vals = new Float32Array(batch * n);
  const lo = new Float32Array(batch * n);
  const vecs = new Float32Array(batch * n * n);
  for (let i = 0; i < batch; i++) {
    const r = symEigF64(X.subarray(i * n * n, (i + 1) * n * n), n);
    if (!r.converged) throw new Error(`${SYM_EIG}: the QR iteration did not converge (NaN or Inf input?)`);
    for (let j = 0; j < n; j++) {
      vals[i * n + j] = r.values[j]!;
      lo[i * n + j] = r.values[j]! - vals[i * n + j]!;
    }
    vecs.set(r.vectors, i * n * n);
  }
  return [
    backend.makeTensorInfo([batch, n], 'float32', vals),
    backend.makeTensorInfo([batch, n], 'float32', lo),
    backend.makeTensorInfo([batch, n, n], 'float32', vecs),
  ];
}

function gradJs({ inputs, backend: b }: KernelArgs): TensorInfo[] {
  const backend = b as MathBackendCPU;
  const [batch, n] = symEigLayout(inputs['vectors']!.shape, SYM_EIG_GRAD);
  const val = f32(backend, inputs['values']!, SYM_EIG_GRAD);
  const vlo = f32(backend, inputs['valuesLo']!, SYM_EIG_GRAD);
  const vec = f32(backend, inputs['vectors']!, SYM_EIG_GRAD);
  const gval = f32(backend, inputs['gValues']!, SYM_EIG_GRAD);
  const gvec = f32(backend, inputs['gVectors']!, SYM_EIG_GRAD);
  const out = new Float32Array(batch * n * n);
  const lam = new Float64Array(n);
  const ga = new Float64Array(n * n);
  const col = new Float64Array(n);
  const u = new Float64Array(n);
  for (let bi = 0; bi < batch; bi++) {
    const o = bi * n * n;
    let scale = 1e-300;
    for (let p = 0; p < n; p++) {
      lam[p] = val[bi * n + p]! + vlo[bi * n + p]!;
      scale = Math.max(scale, Math.abs(lam[p]!));
    }
    ga.fill(0);
    for (let q = 0; q < n; q++) {
      let active = gval[bi * n + q] !== 0;
      for (let k = 0; k < n && !active; k++) active = gvec[o + k * n + q] !== 0;
      if (!active) continue;
      col.fill(0);
      for (let k = 0; k < n; k++) {
        const g = gvec[o + k * n + q]!;
        if (g === 0) continue;
        for (let p = 0; p < n; p++) col[p]! += vec[o + k * n + p]! * g;
      }
      for (let p = 0; p < n; p++) {
        const gap = lam[q]! - lam[p]!;
        col[p] = p === q ? gval[bi * n + q]! : Math.abs(gap) <= 1e-10 * scale ? 0 : col[p]! / gap;
      }
      for (let i = 0; i < n; i++) {
        let acc = 0;
        for (let p = 0; p < n; p++) acc += vec[o + i * n + p]! * col[p]!;
        u[i] = acc;
      }
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) ga[i * n + j]! += u[i]! * vec[o + j * n + q]!;
    }
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) out[o + i * n + j] = 0.5 * (ga[i * n + j]! + ga[j * n + i]!);
  }
  return [backend.makeTensorInfo([batch, n, n], 'float32', out)];
}

/** Registers the JS kernels for `cpu` and the gradient (idempotent). Call before copying cpu kernels. */
export function registerCpuSymEigKernels(): void {
  if (getKernel(SYM_EIG, 'cpu') === undefined)
    registerKernel({ kernelName: SYM_EIG, backendName: 'cpu', kernelFunc: eigJs as never });
  if (getKernel(SYM_EIG_GRAD, 'cpu') === undefined)
    registerKernel({ kernelName: SYM_EIG_GRAD, backendName: 'cpu', kernelFunc: gradJs as never });
  if (getGradient(SYM_EIG) === undefined) {
    registerGradient({
      kernelName: SYM_EIG,
      outputsToSave: [true, true, true],
      gradFunc: (dys: Tensor | Tensor[], saved: Tensor[]) => {
        const [gValues, , gVectors] = dys as Tensor[];
        const [values, valuesLo, vectors] = saved as [Tensor, Tensor, Tensor];
        // Computed eagerly (see batchnorm_kernels.ts: tfjs tidies each returned closure).
        const out = engine().runKernel(SYM_EIG_GRAD, {
          values,
          valuesLo,
          vectors,
          gValues: gValues!,
          gVectors: gVectors!,
        }) as unknown as Tensor | Tensor[];
        const gx = Array.isArray(out) ? out[0]! : out;
        return { x: () => gx };
      },
    });
  }
}

/**
 * [B, n, n] symmetric (float32) -> eigenvalues [B, n] (descending) and eigenvectors [B, n, n]
 * (unit columns), differentiable with respect to the matrices (see the file comment).
 */
export function symEig(x: Tensor): { values: Tensor; vectors: Tensor } {
  symEigLayout(x.shape);
  const [values, , vectors] = engine().runKernel(SYM_EIG, { x }) as unknown as [Tensor, Tensor, Tensor];
  return { values, vectors };
}
