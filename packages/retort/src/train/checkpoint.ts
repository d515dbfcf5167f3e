/**
 * Checkpoints in one file, written atomically: 'RTCK', a uint32 format version, a uint32 header
 * length, a JSON header, then float32 tensor data (4-byte aligned). The header holds the epoch,
 * the random-generator states and each tensor's name, shape and offset.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileAtomic } from '../util/atomic.js';

const MAGIC = 0x4b435452; // 'RTCK' little-endian
const VERSION = 1;

export interface TensorEntry {
  name: string;
  shape: number[];
  offset: number; // in float32 elements from the start of the data section
  length: number;
}

export interface CheckpointHeader {
  epoch: number;
  globalStep: number;
  meta: Record<string, unknown>;
  tensors: TensorEntry[];
}

export interface Checkpoint {
  header: CheckpointHeader;
  /** Tensor values by name (copies owned by the caller). */
  values: Map<string, { shape: number[]; data: Float32Array }>;
}

/** Writes `tensors` and metadata to `path` atomically (a crash leaves the old file intact). */
export function saveCheckpoint(
  path: string,
  state: { epoch: number; globalStep: number; meta: Record<string, unknown> },
  tensors: { name: string; tensor: tf.Tensor }[],
): void {
  const entries: TensorEntry[] = [];
  const datas: Float32Array[] = [];
  let offset = 0;
  for (const { name, tensor } of tensors) {
    if (tensor.dtype !== 'float32')
      throw new Error(`checkpoint ${path}: tensor ${name} is ${tensor.dtype}, expected float32`);
    const data = tensor.dataSync() as Float32Array;
    entries.push({ name, shape: tensor.shape.slice(), offset, length: data.length });
    datas.push(data);
    offset += data.length;
  }
  const header: CheckpointHeader = {
    epoch: state.epoch,
    globalStep: state.globalStep,
    meta: state.meta,
    tensors: entries,
  };
  let json = Buffer.from(JSON.stringify(header));
  const padded = Math.ceil(json.length / 4) * 4;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const out = Buffer.alloc(12 + json.length + offset * 4);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(VERSION, 4);
  out.writeUInt32LE(json.length, 8);
  json.copy(out, 12);
  const body = new Float32Array(out.buffer, out.byteOffset + 12 + json.length, offset);
  for (let i = 0; i < datas.length; i++) body.set(datas[i]!, entries[i]!.offset);
  writeFileAtomic(path, out);
}

/** Reads a checkpoint; errors name the file and what is wrong with it. */
export function loadCheckpoint(path: string): Checkpoint {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new Error(
      `checkpoint ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  if (buf.length < 12 || buf.readUInt32LE(0) !== MAGIC)
    throw new Error(`checkpoint ${path}: not a Retort checkpoint (bad magic)`);
  const version = buf.readUInt32LE(4);
  if (version !== VERSION)
    throw new Error(`checkpoint ${path}: format version ${version}, this Retort reads ${VERSION}`);
  const hlen = buf.readUInt32LE(8);
  if (12 + hlen > buf.length) throw new Error(`checkpoint ${path}: truncated header`);
  let header: CheckpointHeader;
  try {
    header = JSON.parse(buf.subarray(12, 12 + hlen).toString('utf8')) as CheckpointHeader;
  } catch (e) {
    throw new Error(`checkpoint ${path}: corrupt header (${(e as Error).message})`);
  }
  const total = header.tensors.reduce((a, t) => Math.max(a, t.offset + t.length), 0);
  const bodyBytes = buf.length - 12 - hlen;
  if (bodyBytes < total * 4)
    throw new Error(`checkpoint ${path}: truncated: ${bodyBytes} data bytes, header needs ${total * 4}`);
  const body = new Float32Array(
    buf.buffer.slice(buf.byteOffset + 12 + hlen, buf.byteOffset + 12 + hlen + total * 4),
  );
  const values = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const t of header.tensors)
    values.set(t.name, { shape: t.shape, data: body.slice(t.offset, t.offset + t.length) });
  return { header, values };
}

/** Saves a model's weights (in `model.weights` order) as a checkpoint file. */
export function saveModelWeights(
  path: string,
  model: { weights: { name: string; read(): tf.Tensor }[] },
  meta: Record<string, unknown>,
): void {
  saveCheckpoint(
    path,
    { epoch: 0, globalStep: 0, meta },
    model.weights.map((w, i) => ({ name: `w${i}/${w.name}`, tensor: w.read() })),
  );
}

/** Loads weights saved by saveModelWeights (or a trainer checkpoint's model part) into `model`. */
export function loadModelWeights(
  path: string,
  model: { name: string; weights: { name: string; shape: (number | null)[]; write(v: tf.Tensor): void }[] },
  prefix = '',
): CheckpointHeader {
  const ck = loadCheckpoint(path);
  const saved = ck.header.tensors.filter((t) => !t.name.startsWith('opt/') && t.name.startsWith(prefix));
  if (saved.length < model.weights.length) {
    throw new Error(
      `${path}: has ${saved.length} weights, model ${model.name} needs ${model.weights.length} (different architecture?)`,
    );
  }
  model.weights.forEach((w, i) => {
    const e = saved[i]!;
    if (e.shape.join(',') !== w.shape.join(',')) {
      throw new Error(
        `${path}: weight ${e.name} has shape [${e.shape}], ${model.name}'s ${w.name} is [${w.shape}]`,
      );
    }
    const v = ck.values.get(e.name)!;
    const t = tf.tensor(v.data, v.shape);
    w.write(t);
    t.dispose();
  });
  return ck.header;
}
