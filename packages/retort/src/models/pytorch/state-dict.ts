/**
 * PyTorch weights into Retort's zoo models. A `torch.save(model.state_dict())` file (.pt / .pth,
 * the zip format of PyTorch >= 1.6) is read without Python and without running anything from the
 * file (pickle.ts), then each tfjs layer takes the tensors of the PyTorch module of the same name —
 * the zoo's layer names are RepDistiller's module names — converted to tfjs layouts:
 *   Conv2d weight [O, I, kh, kw] -> Conv2D kernel [kh, kw, I, O]
 *   depthwise Conv2d weight [C * m, 1, kh, kw] -> DepthwiseConv2D kernel [kh, kw, C, m]
 *   Linear weight [out, in] -> Dense kernel [in, out]; when the Dense reads a flattened map, its
 *     rows are reordered from PyTorch's (c, h, w) flattening to tfjs's (h, w, c)
 *   BatchNorm weight, bias, running_mean, running_var -> gamma, beta, moving mean, moving variance
 * Keys the model does not use and weights the file lacks are errors (strict, like
 * load_state_dict(strict=True)); BN's num_batches_tracked is ignored.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { RetortError } from '../../util/errors.js';
import { readFileBounded } from '../../util/read.js';
import { readStateDictPickle, type TensorRef } from './pickle.js';
import { readStoredZip } from './zip.js';

export interface TorchTensor {
  shape: number[];
  data: Float32Array;
}

const BYTES: Record<string, number> = {
  FloatStorage: 4,
  DoubleStorage: 8,
  LongStorage: 8,
  IntStorage: 4,
  HalfStorage: 2,
};

/** Reads the tensors of a state-dict file as float32 arrays, by key. */
export function readTorchStateDict(path: string): Map<string, TorchTensor> {
  const bytes = new Uint8Array(readFileBounded(path, 2 ** 31 - 1, 'PyTorch state dict'));
  const entries = readStoredZip(bytes, path);
  const pkl = [...entries.keys()].find((k) => /^[^/]+\/data\.pkl$/.test(k));
  if (pkl === undefined)
    throw new RetortError(
      `${path}: no data.pkl in the archive (a file from torch.save of PyTorch >= 1.6 is expected)`,
      {
        file: path,
      },
    );
  const prefix = pkl.slice(0, -'data.pkl'.length);
  const refs = readStateDictPickle(entries.get(pkl)!.data, path);
  const out = new Map<string, TorchTensor>();
  for (const [key, t] of refs) {
    if (key.endsWith('num_batches_tracked')) continue;
    out.set(key, materialize(key, t, entries.get(`${prefix}data/${t.storage.key}`)?.data, path));
  }
  return out;
}

/** The tensor's elements in row-major order (strides applied), as float32. */
function materialize(key: string, t: TensorRef, raw: Uint8Array | undefined, path: string): TorchTensor {
  const width = BYTES[t.storage.type];
  if (width === undefined)
    throw new RetortError(
      `${path}: '${key}' is stored as ${t.storage.type}; float32, float64, float16, int32 and int64 tensors are read`,
      { file: path },
    );
  if (raw === undefined || raw.length < t.storage.numel * width)
    throw new RetortError(`${path}: the storage of '${key}' is missing or short`, { file: path });
  // Bounds before allocating: a small file must not ask for gigabytes or read past its storage.
  const n = t.size.reduce((a, b) => a * b, 1);
  let last = t.offset;
  for (const [d, s] of t.size.entries()) if (s > 0) last += (s - 1) * t.stride[d]!;
  if (t.offset < 0 || n > t.storage.numel || (n > 0 && last >= t.storage.numel))
    throw new RetortError(
      `${path}: '${key}' ([${t.size.join(', ')}] at offset ${t.offset}) does not fit its storage of ${t.storage.numel}`,
      { file: path },
    );
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const read = (i: number): number => {
    switch (t.storage.type) {
      case 'FloatStorage':
        return v.getFloat32(i * 4, true);
      case 'DoubleStorage':
        return v.getFloat64(i * 8, true);
      case 'LongStorage':
        return Number(v.getBigInt64(i * 8, true));
      case 'IntStorage':
        return v.getInt32(i * 4, true);
      default:
        return halfToFloat(v.getUint16(i * 2, true));
    }
  };
  const data = new Float32Array(n);
  const idx = new Array<number>(t.size.length).fill(0);
  for (let k = 0; k < n; k++) {
    let s = t.offset;
    for (let d = 0; d < idx.length; d++) s += idx[d]! * t.stride[d]!;
    data[k] = read(s);
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d]! < t.size[d]!) break;
      idx[d] = 0;
    }
  }
  return { shape: [...t.size], data };
}

function halfToFloat(h: number): number {
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  const s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function permute(src: TorchTensor, perm: number[]): tf.Tensor {
  return tf.tidy(() => tf.transpose(tf.tensor(src.data, src.shape), perm));
}

/**
 * Sets `model`'s weights from a PyTorch state dict (a file path or what readTorchStateDict gave).
 * Throws naming the first key or layer that does not fit; the model is untouched then.
 */
export function loadStateDict(model: tfl.LayersModel, source: string | Map<string, TorchTensor>): void {
  const sd = typeof source === 'string' ? readTorchStateDict(source) : source;
  const where = typeof source === 'string' ? source : 'state dict';
  const used = new Set<string>();
  const assign: { variable: tfl.LayerVariable; value: tf.Tensor }[] = [];
  const take = (key: string) => {
    const t = sd.get(key);
    if (t === undefined)
      throw new RetortError(`${where}: no '${key}' for layer weights of model ${model.name}`);
    used.add(key);
    return t;
  };
  try {
    for (const layer of model.layers) {
      if (layer.weights.length === 0) continue;
      const name = layer.name;
      const cls = layer.getClassName();
      for (const w of layer.weights) {
        const role = w.originalName.split('/').at(-1)!;
        let value: tf.Tensor;
        if (role === 'kernel' && cls === 'Conv2D') value = permute(take(`${name}.weight`), [2, 3, 1, 0]);
        else if (role === 'depthwise_kernel') {
          const t = take(`${name}.weight`); // [C * m, 1, kh, kw]
          const [kh, kw, c, m] = w.shape as number[];
          value = tf.tidy(() => tf.reshape(permute(t, [2, 3, 1, 0]), [kh!, kw!, c!, m!]));
        } else if (role === 'kernel' && cls === 'Dense') value = denseKernel(layer, take(`${name}.weight`));
        else if (role === 'bias') value = tf.tensor(take(`${name}.bias`).data);
        else if (role === 'gamma') value = tf.tensor(take(`${name}.weight`).data);
        else if (role === 'beta') value = tf.tensor(take(`${name}.bias`).data);
        else if (role === 'moving_mean') value = tf.tensor(take(`${name}.running_mean`).data);
        else if (role === 'moving_variance') value = tf.tensor(take(`${name}.running_var`).data);
        else
          throw new RetortError(
            `${where}: layer ${name} (${cls}) has weight '${role}', which has no PyTorch mapping`,
          );
        const want = w.shape as number[];
        if (
          value.size !== want.reduce((a, b) => a * b, 1) ||
          (value.rank === want.length && !value.shape.every((d, i) => d === want[i]))
        ) {
          const shape = value.shape;
          value.dispose();
          throw new RetortError(
            `${where}: '${name}' ${role} is [${shape.join(', ')}] from the file and [${w.shape.join(', ')}] in the model`,
          );
        }
        assign.push({ variable: w, value: tf.reshape(value, want) });
        if (value !== assign.at(-1)!.value) value.dispose();
      }
    }
    const unused = [...sd.keys()].filter((k) => !used.has(k));
    if (unused.length > 0)
      throw new RetortError(
        `${where}: keys the model ${model.name} has no layer for: ${unused.slice(0, 10).join(', ')}${unused.length > 10 ? ', ...' : ''}`,
      );
    for (const a of assign) a.variable.write(a.value);
  } finally {
    tf.dispose(assign.map((a) => a.value));
  }
}

/** Linear weight [out, in] as a Dense kernel [in, out], rows reordered after a flattened map. */
function denseKernel(layer: tfl.layers.Layer, w: TorchTensor): tf.Tensor {
  const kernel = permute(w, [1, 0]);
  const inbound = (layer.inboundNodes[0]?.inboundLayers ?? [])[0];
  const shape =
    inbound?.getClassName() === 'Flatten' ? (inbound.inputSpec?.[0]?.shape ?? inbound.input) : null;
  const s = Array.isArray(shape) ? shape : (shape as tfl.SymbolicTensor | null)?.shape;
  if (s?.length !== 4) return kernel;
  const [, h, wd, c] = s as number[];
  // tfjs row r = (y * W + x) * C + ch takes PyTorch row ch * H * W + y * W + x.
  const rows = new Int32Array(h! * wd! * c!);
  for (let y = 0; y < h!; y++)
    for (let x = 0; x < wd!; x++)
      for (let ch = 0; ch < c!; ch++) rows[(y * wd! + x) * c! + ch] = ch * h! * wd! + y * wd! + x;
  const out = tf.tidy(() => tf.gather(kernel, tf.tensor1d(rows, 'int32')));
  kernel.dispose();
  return out;
}
