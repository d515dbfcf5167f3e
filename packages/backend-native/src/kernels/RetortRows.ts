/** Native row lookups and bank updates (see custom/rows_kernels.ts). */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeBackend } from '../backend.js';
import { rowsLayout } from '../custom/rows_kernels.js';
import type { NativeKernel } from './kernel.js';

/** Every index in [0, m). Otherwise the JS kernel runs and throws its own error naming the index. */
function inRange(idx: Int32Array, m: number): boolean {
  for (let i = 0; i < idx.length; i++) if (!(idx[i]! >= 0 && idx[i]! < m)) return false;
  return true;
}

function i32(backend: NativeBackend, t: TensorInfo | undefined): Int32Array | null {
  if (t === undefined || t.dtype !== 'int32') return null;
  const v = backend.data.get(t.dataId)?.values;
  return v instanceof Int32Array ? v : null;
}

export const retortGatherRowsDot: NativeKernel = {
  kernelName: 'RetortGatherRowsDot',
  run({ inputs, backend, addon }) {
    const { table, indices, x } = inputs;
    const idx = i32(backend, indices);
    if (table === undefined || x === undefined || idx === null) return null;
    const t = backend.f32(table);
    const xv = backend.f32(x);
    if (t === null || xv === null) return null;
    const { m, d, n, k } = rowsLayout('RetortGatherRowsDot', table.shape, indices!.shape, {
      name: 'x',
      shape: x.shape,
      cols: 'D',
    });
    // No indices (N or K = 0): the JS kernel answers with its empty or zero result.
    if (idx.length === 0 || !inRange(idx, m)) return null;
    const out = backend.makeOutputF32([n, k]);
    addon.RetortGatherRowsDot(t, idx, xv, out.values, m, d);
    return out.info;
  },
};

export const retortGatherRowsWeightedSum: NativeKernel = {
  kernelName: 'RetortGatherRowsWeightedSum',
  run({ inputs, backend, addon }) {
    const { table, indices, w } = inputs;
    const idx = i32(backend, indices);
    if (table === undefined || w === undefined || idx === null) return null;
    const t = backend.f32(table);
    const wv = backend.f32(w);
    if (t === null || wv === null) return null;
    const { m, d, n } = rowsLayout('RetortGatherRowsWeightedSum', table.shape, indices!.shape, {
      name: 'w',
      shape: w.shape,
      cols: 'K',
    });
    if (idx.length === 0 || !inRange(idx, m)) return null;
    const out = backend.makeOutputF32([n, d]);
    addon.RetortGatherRowsWeightedSum(t, idx, wv, out.values, m, d);
    return out.info;
  },
};

export const retortScatterRows: NativeKernel = {
  kernelName: 'RetortScatterRows',
  run({ inputs, backend, addon }) {
    const { table, indices, rows } = inputs;
    const idx = i32(backend, indices);
    if (table === undefined || rows === undefined || idx === null) return null;
    const t = backend.f32(table);
    const rv = backend.f32(rows);
    const [m, d] = table.shape;
    if (t === null || rv === null || table.shape.length !== 2 || m === undefined || d === undefined)
      return null;
    if (
      indices!.shape.length !== 1 ||
      rows.shape.length !== 2 ||
      rows.shape[0] !== idx.length ||
      rows.shape[1] !== d
    )
      return null; // the JS kernel names the shapes
    // D = 0 leaves M undetermined for the addon; the JS kernel still checks the indices against M.
    if (d === 0 || !inRange(idx, m)) return null;
    const out = backend.makeOutputF32([m, d]);
    addon.RetortScatterRows(t, idx, rv, out.values, d);
    return out.info;
  },
};
