/**
 * Checkpoints in one file, written atomically (temp file, fsync, rename). Format version 2:
 *
 *   0  'RTCK'      magic
 *   4  uint32      format version (2)
 *   8  uint32      header length H (a multiple of 4)
 *  12  32 bytes    SHA-256 of everything from byte 44 to the end (header and data)
 *  44  H bytes     JSON header: epoch, global step, meta (random-generator states, ...) and the
 *                  tensor table (name, shape, offset and length in float32 elements)
 *  44+H            float32 tensor data, exactly as long as the table says
 *
 * Loading reads only regular files up to CHECKPOINT_MAX_BYTES, verifies the digest (one flipped
 * bit anywhere after the first 12 bytes is caught; a flip in those is a wrong magic, version or
 * length), checks the table against the data, and turns every problem into a RetortError naming
 * the file. Version 1 files (no digest, written before 2026-12) still load, with the same table
 * checks.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileAtomic } from '../util/atomic.js';
import { RetortError } from '../util/errors.js';
import { readFileBounded } from '../util/read.js';

const MAGIC = 0x4b435452; // 'RTCK' little-endian
const VERSION = 2;
const DIGEST_BYTES = 32;
/** Largest checkpoint read: teacher caches with features are the big ones (up to ~1 GiB of data). */
export const CHECKPOINT_MAX_BYTES = 2 * 1024 ** 3;

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
  const start = 12 + DIGEST_BYTES;
  const out = Buffer.alloc(start + json.length + offset * 4);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(VERSION, 4);
  out.writeUInt32LE(json.length, 8);
  json.copy(out, start);
  const body = new Float32Array(out.buffer, out.byteOffset + start + json.length, offset);
  for (let i = 0; i < datas.length; i++) body.set(datas[i]!, entries[i]!.offset);
  createHash('sha256').update(out.subarray(start)).digest().copy(out, 12);
  writeFileAtomic(path, out);
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** The header's structure, checked field by field against the data that follows it. */
function checkHeader(h: unknown, dataFloats: number, bad: (why: string) => RetortError): CheckpointHeader {
  if (typeof h !== 'object' || h === null || Array.isArray(h)) throw bad('header is not an object');
  const o = h as Record<string, unknown>;
  if (!isCount(o['epoch']) || !isCount(o['globalStep'])) throw bad('header epoch/globalStep are not counts');
  if (typeof o['meta'] !== 'object' || o['meta'] === null || Array.isArray(o['meta']))
    throw bad('header meta is not an object');
  if (!Array.isArray(o['tensors'])) throw bad('header has no tensor table');
  const names = new Set<string>();
  for (const [i, t] of (o['tensors'] as unknown[]).entries()) {
    const e = t as Partial<TensorEntry> | null;
    const at = `tensor table entry ${i}`;
    if (typeof e !== 'object' || e === null) throw bad(`${at} is not an object`);
    if (typeof e.name !== 'string' || e.name === '') throw bad(`${at} has no name`);
    if (names.has(e.name)) throw bad(`tensor '${e.name}' appears twice`);
    names.add(e.name);
    if (!Array.isArray(e.shape) || e.shape.length > 8 || !e.shape.every(isCount))
      throw bad(`tensor '${e.name}' has a bad shape`);
    if (!isCount(e.offset) || !isCount(e.length)) throw bad(`tensor '${e.name}' has a bad offset/length`);
    if (e.shape.reduce((a: number, b: number) => a * b, 1) !== e.length)
      throw bad(`tensor '${e.name}': shape [${e.shape}] does not hold ${e.length} values`);
    if (e.offset + e.length > dataFloats)
      throw bad(`tensor '${e.name}' ends at value ${e.offset + e.length}, the data holds ${dataFloats}`);
  }
  return h as CheckpointHeader;
}

/**
 * Reads and verifies a checkpoint; every problem is a RetortError naming the file and what is wrong
 * (a damaged file says so, so that callers can fall back to an older one).
 */
export function loadCheckpoint(path: string): Checkpoint {
  const buf = readFileBounded(path, CHECKPOINT_MAX_BYTES, 'checkpoint');
  const bad = (why: string) => new RetortError(`checkpoint ${path}: ${why}`, { file: path });
  if (buf.length < 12 || buf.readUInt32LE(0) !== MAGIC) throw bad('not a Retort checkpoint (bad magic)');
  const version = buf.readUInt32LE(4);
  if (version !== 1 && version !== VERSION)
    throw bad(`format version ${version}, this Retort reads 1 and ${VERSION}`);
  const start = version === 1 ? 12 : 12 + DIGEST_BYTES;
  const hlen = buf.readUInt32LE(8);
  if (buf.length < start || hlen > buf.length - start) throw bad('truncated header (damaged file)');
  if (version === VERSION) {
    const want = buf.subarray(12, start);
    const got = createHash('sha256').update(buf.subarray(start)).digest();
    if (!got.equals(want)) throw bad('checksum mismatch (damaged or truncated file)');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.subarray(start, start + hlen).toString('utf8'));
  } catch (e) {
    throw bad(`corrupt header (${(e as Error).message})`);
  }
  const dataBytes = buf.length - start - hlen;
  const header = checkHeader(parsed, Math.floor(dataBytes / 4), bad);
  const total = header.tensors.reduce((a, t) => Math.max(a, t.offset + t.length), 0);
  if (version === VERSION && dataBytes !== total * 4)
    throw bad(`${dataBytes} data bytes, the tensor table describes ${total * 4}`);
  // Aligned copies: the data section starts at a multiple of 4 within the file, not of the buffer.
  const body = new Float32Array(
    buf.buffer.slice(buf.byteOffset + start + hlen, buf.byteOffset + start + hlen + total * 4),
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
