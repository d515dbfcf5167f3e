/**
 * Row lookups in a large [M, D] table without materialising the gathered rows, for memory banks
 * (CRD: N = 128 examples x K = 4097 rows x D = 128 per bank and step, 268 MB as tf.gather's output,
 * which tfjs's cpu GatherV2 filled at about 20 s per step here):
 *
 * - `RetortGatherRowsDot` {table [M, D], indices [N, K] int32, x [N, D]} -> [N, K]:
 *   out[n, k] = <table[indices[n, k]], x[n]>.
 * - `RetortGatherRowsWeightedSum` {table, indices [N, K], w [N, K]} -> [N, D]:
 *   out[n] = sum_k w[n, k] table[indices[n, k]], the gradient of the first with respect to x.
 * - `RetortScatterRows` {table [M, D], indices [R] int32, rows [R, D]} -> [M, D]: the table with those
 *   rows replaced (a later duplicate wins), as a new tensor: a bank's update, inputs never written.
 *
 * JS versions here for `cpu` (the reference and `native`'s fallback), native ones in
 * native/RetortGatherRowsDot.cc, RetortGatherRowsWeightedSum.cc and RetortScatterRows.cc; both
 * accumulate in float32 in the same order. Indices outside [0, M) are an error naming the kernel.
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

export const GATHER_ROWS_DOT = 'RetortGatherRowsDot';
export const GATHER_ROWS_WSUM = 'RetortGatherRowsWeightedSum';
export const SCATTER_ROWS = 'RetortScatterRows';

function i32(backend: MathBackendCPU, t: TensorInfo, what: string): Int32Array {
  const v = backend.data.get(t.dataId).values;
  if (t.dtype !== 'int32' || !(v instanceof Int32Array))
    throw new Error(`${what}: indices must be int32, got ${t.dtype}`);
  return v;
}

/** [M, D] of the table and [N, K] of the indices; checks x's (or w's) shape against them. */
export function rowsLayout(
  what: string,
  table: readonly number[],
  indices: readonly number[],
  other?: { name: string; shape: readonly number[]; cols: 'D' | 'K' },
): { m: number; d: number; n: number; k: number } {
  const [m, d] = table;
  if (table.length !== 2 || m === undefined || d === undefined || m < 1 || d < 1)
    throw new Error(`${what}: table must be [M, D], got [${table.join(', ')}]`);
  const [n, k] = indices;
  if (indices.length !== 2 || n === undefined || k === undefined)
    throw new Error(`${what}: indices must be [N, K], got [${indices.join(', ')}]`);
  if (other) {
    const want = [n, other.cols === 'D' ? d : k];
    if (other.shape.length !== 2 || other.shape[0] !== want[0] || other.shape[1] !== want[1])
      throw new Error(`${what}: ${other.name} must be [${want.join(', ')}], got [${other.shape.join(', ')}]`);
  }
  return { m, d, n, k };
}

function checkIndices(idx: Int32Array, m: number, what: string): void {
  for (let i = 0; i < idx.length; i++)
    if (!(idx[i]! >= 0 && idx[i]! < m))
      throw new Error(`${what}: index ${idx[i]} at ${i} is not in [0, ${m})`);
}

function dotJs({ inputs, backend: b }: KernelArgs): TensorInfo {
  const backend = b as MathBackendCPU;
  const { table, indices, x } = inputs as Record<'table' | 'indices' | 'x', TensorInfo>;
  const { m, d, n, k } = rowsLayout(GATHER_ROWS_DOT, table.shape, indices.shape, {
    name: 'x',
    shape: x.shape,
    cols: 'D',
  });
  const T = f32(backend, table, GATHER_ROWS_DOT);
  const I = i32(backend, indices, GATHER_ROWS_DOT);
  const X = f32(backend, x, GATHER_ROWS_DOT);
  checkIndices(I, m, GATHER_ROWS_DOT);
  const out = new Float32Array(n * k);
  for (let r = 0; r < n * k; r++) {
    const row = I[r]! * d;
    const xr = Math.floor(r / k) * d;
    let acc = Math.fround(0);
    for (let j = 0; j < d; j++) acc = Math.fround(acc + Math.fround(T[row + j]! * X[xr + j]!));
    out[r] = acc;
  }
  return backend.makeTensorInfo([n, k], 'float32', out);
}

function wsumJs({ inputs, backend: b }: KernelArgs): TensorInfo {
  const backend = b as MathBackendCPU;
  const { table, indices, w } = inputs as Record<'table' | 'indices' | 'w', TensorInfo>;
  const { m, d, n, k } = rowsLayout(GATHER_ROWS_WSUM, table.shape, indices.shape, {
    name: 'w',
    shape: w.shape,
    cols: 'K',
  });
  const T = f32(backend, table, GATHER_ROWS_WSUM);
  const I = i32(backend, indices, GATHER_ROWS_WSUM);
  const W = f32(backend, w, GATHER_ROWS_WSUM);
  checkIndices(I, m, GATHER_ROWS_WSUM);
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < k; j++) {
      const wj = W[i * k + j]!;
      const row = I[i * k + j]! * d;
      for (let c = 0; c < d; c++)
        out[i * d + c] = Math.fround(out[i * d + c]! + Math.fround(wj * T[row + c]!));
    }
  return backend.makeTensorInfo([n, d], 'float32', out);
}

function scatterJs({ inputs, backend: b }: KernelArgs): TensorInfo {
  const backend = b as MathBackendCPU;
  const { table, indices, rows } = inputs as Record<'table' | 'indices' | 'rows', TensorInfo>;
  const [m, d] = table.shape;
  const r = indices.shape[0];
  if (table.shape.length !== 2 || m === undefined || d === undefined)
    throw new Error(`${SCATTER_ROWS}: table must be [M, D], got [${table.shape.join(', ')}]`);
  if (indices.shape.length !== 1 || rows.shape.length !== 2 || rows.shape[0] !== r || rows.shape[1] !== d)
    throw new Error(
      `${SCATTER_ROWS}: expected indices [R] and rows [R, ${d}], got [${indices.shape.join(', ')}] and [${rows.shape.join(', ')}]`,
    );
  const T = f32(backend, table, SCATTER_ROWS);
  const I = i32(backend, indices, SCATTER_ROWS);
  const R = f32(backend, rows, SCATTER_ROWS);
  checkIndices(I, m, SCATTER_ROWS);
  const out = Float32Array.from(T);
  for (let i = 0; i < I.length; i++) out.set(R.subarray(i * d, (i + 1) * d), I[i]! * d);
  return backend.makeTensorInfo([m, d], 'float32', out);
}

/** Registers the JS kernels for `cpu` and the gradient (idempotent). Call before copying cpu kernels. */
export function registerCpuRowsKernels(): void {
  for (const [name, fn] of [
    [GATHER_ROWS_DOT, dotJs],
    [GATHER_ROWS_WSUM, wsumJs],
    [SCATTER_ROWS, scatterJs],
  ] as const)
    if (getKernel(name, 'cpu') === undefined)
      registerKernel({ kernelName: name, backendName: 'cpu', kernelFunc: fn as never });
  if (getGradient(GATHER_ROWS_DOT) === undefined) {
    registerGradient({
      kernelName: GATHER_ROWS_DOT,
      inputsToSave: ['table', 'indices', 'x'],
      gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
        const g = (Array.isArray(dy) ? dy[0] : dy) as Tensor;
        const [table, indices, x] = saved as [Tensor, Tensor, Tensor];
        return {
          x: () => engine().runKernel(GATHER_ROWS_WSUM, { table, indices, w: g }) as Tensor,
          // d table[j] = sum over (n, k) with indices[n, k] = j of g[n, k] x[n]; memory banks are
          // buffers, so this runs only when a table is differentiated.
          table: () => {
            const [n, k] = indices.shape as [number, number];
            const d = x.shape[1]!;
            const contrib = engine().runKernel('Multiply', {
              a: engine().runKernel('Reshape', { x: g }, { shape: [n, k, 1] }) as Tensor,
              b: engine().runKernel('Reshape', { x }, { shape: [n, 1, d] }) as Tensor,
            }) as Tensor;
            return engine().runKernel(
              'UnsortedSegmentSum',
              {
                x: engine().runKernel('Reshape', { x: contrib }, { shape: [n * k, d] }) as Tensor,
                segmentIds: engine().runKernel('Reshape', { x: indices }, { shape: [n * k] }) as Tensor,
              },
              { numSegments: table.shape[0]! },
            ) as Tensor;
          },
          indices: () => engine().runKernel('ZerosLike', { x: indices }) as Tensor,
        };
      },
    });
  }
}

/** <table[indices[n, k]], x[n]> for table [M, D], indices [N, K] int32, x [N, D]: [N, K]. */
export function gatherRowsDot(table: Tensor, indices: Tensor, x: Tensor): Tensor {
  rowsLayout('gatherRowsDot', table.shape, indices.shape, { name: 'x', shape: x.shape, cols: 'D' });
  if (indices.dtype !== 'int32')
    throw new Error(`gatherRowsDot: indices must be int32, got ${indices.dtype}`);
  return engine().runKernel(GATHER_ROWS_DOT, { table, indices, x }) as Tensor;
}

/** The table [M, D] with rows `indices` [R] (int32) replaced by `rows` [R, D], as a new tensor. */
export function scatterRows(table: Tensor, indices: Tensor, rows: Tensor): Tensor {
  if (indices.dtype !== 'int32') throw new Error(`scatterRows: indices must be int32, got ${indices.dtype}`);
  return engine().runKernel(SCATTER_ROWS, { table, indices, rows }) as Tensor;
}
