/**
 * Retort's .rtz bundle: a compressed model (pruned, weight-shared, int8-snapped) as one file whose
 * size is the real one, where the tfjs format (tfjs.ts) stores every weight as fp32. Layout, all
 * integers little-endian:
 *   0   8 bytes  magic 89 'R' 'T' 'Z' 0D 0A 1A 0A (the PNG trick: a text-mode transfer that
 *                rewrites line ends or stops at ^Z breaks the magic, not the weights)
 *   8   u32      format version (1)
 *   12  u32      stored manifest length M (raw deflate)
 *   16  u32      manifest length once inflated
 *   20  u64      payload length P
 *   28  M bytes  manifest: JSON {format, generatedBy, modelTopology (as model.save gives it),
 *                weights: [{name, shape, dtype, encoding, offset, length, sha256}]}
 *   28+M P bytes the tensors' encoded bytes (offsets relative to the payload's start)
 *   end-32       sha256 of everything before it.
 * The encodings are in rtz-codec.ts; each tensor gets the smallest one that decodes to its exact
 * float32 bits, so a loaded bundle computes the same outputs as the model it was written from.
 * A file is checked before anything in it is trusted: lengths against the file size and limits,
 * the checksum, then every manifest entry; each failure is one RetortError naming the file.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
// The custom layer classes (the zoo's RetortChannelSlice, the hashed layers) must be registered
// before a topology that uses them is deserialized.
import { hashedLayers, unhashModel } from '../compress/hashed-model.js';
import '../models/index.js';
import { writeFileAtomic } from '../util/atomic.js';
import { messageOf, RetortError } from '../util/errors.js';
import { formatBytes, readFileBounded } from '../util/read.js';
import { decodeTensor, encodeTensor, RTZ_ENCODINGS, type RtzEncoding } from './rtz-codec.js';

export { RTZ_ENCODINGS, type RtzEncoding } from './rtz-codec.js';

const MAGIC = [0x89, 0x52, 0x54, 0x5a, 0x0d, 0x0a, 0x1a, 0x0a];
const VERSION = 1;
const HEADER = 28;
const DIGEST = 32;
const MAX_FILE = 2 ** 31 - 1;
const MAX_MANIFEST = 64 * 2 ** 20;
/** Decoded weights at most (float32 values): a 1-value codebook inflates any shape from 6 bytes. */
const MAX_VALUES = 2 ** 28;

export interface RtzTensorEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
  encoding: RtzEncoding;
  /** Bytes from the payload's start. */
  offset: number;
  length: number;
  /** Hex sha256 of the encoded bytes. */
  sha256: string;
}

export interface RtzManifest {
  format: 'retort-rtz';
  generatedBy: string;
  modelTopology: object;
  weights: RtzTensorEntry[];
}

export interface EncodeBundleOptions {
  /** Encodings a tensor may use (default all; fp32 is always allowed). */
  encodings?: readonly RtzEncoding[];
}

export interface WriteBundleOptions extends EncodeBundleOptions {
  /** Replace an existing file at the path (default: refuse). */
  overwrite?: boolean;
}

export interface EncodedTensor {
  name: string;
  encoding: RtzEncoding;
  /** Its size as fp32 (4 bytes a value). */
  rawBytes: number;
  /** Its encoded size in the payload. */
  bytes: number;
}

const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

/** Packs a manifest and its payload into the bytes of a bundle (header, deflated JSON, digest). */
export function assembleBundle(manifest: RtzManifest, payload: Uint8Array): Uint8Array {
  const json = Buffer.from(JSON.stringify(manifest));
  const stored = deflateRawSync(json, { level: 9 });
  const out = new Uint8Array(HEADER + stored.length + payload.length + DIGEST);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(8, VERSION, true);
  view.setUint32(12, stored.length, true);
  view.setUint32(16, json.length, true);
  view.setBigUint64(20, BigInt(payload.length), true);
  out.set(stored, HEADER);
  out.set(payload, HEADER + stored.length);
  out.set(sha256(out.subarray(0, out.length - DIGEST)), out.length - DIGEST);
  return out;
}

/** The bundle of `model`: its topology and every weight in its smallest exact encoding. */
export async function encodeBundle(
  model: tfl.LayersModel,
  opts: EncodeBundleOptions = {},
): Promise<{ bytes: Uint8Array; tensors: EncodedTensor[] }> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!artifacts?.weightData || !artifacts.weightSpecs || !artifacts.modelTopology)
    throw new Error(`rtz: model '${model.name}' gave no topology or weights`);
  const data = artifacts.weightData;
  const all = Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data;
  const allowed = opts.encodings ?? RTZ_ENCODINGS;
  for (const e of allowed)
    if (!RTZ_ENCODINGS.includes(e))
      throw new Error(`rtz: unknown encoding '${e}' (known: ${RTZ_ENCODINGS.join(', ')})`);
  const weights: RtzTensorEntry[] = [];
  const parts: Uint8Array[] = [];
  const tensors: EncodedTensor[] = [];
  let read = 0;
  let offset = 0;
  for (const spec of artifacts.weightSpecs) {
    if (spec.dtype !== 'float32' || spec.quantization)
      throw new Error(`rtz: weight '${spec.name}' is ${spec.dtype}; bundles hold float32 weights`);
    const n = spec.shape.reduce((a, b) => a * b, 1);
    // A copy: the values view must be 4-byte aligned, whatever the weight's offset.
    const values = new Float32Array(all.slice(read, read + 4 * n));
    read += 4 * n;
    const { encoding, bytes } = encodeTensor(values, spec.shape, allowed);
    weights.push({
      name: spec.name,
      shape: [...spec.shape],
      dtype: 'float32',
      encoding,
      offset,
      length: bytes.length,
      sha256: sha256(bytes).toString('hex'),
    });
    tensors.push({ name: spec.name, encoding, rawBytes: 4 * n, bytes: bytes.length });
    parts.push(bytes);
    offset += bytes.length;
  }
  const payload = new Uint8Array(offset);
  let at = 0;
  for (const p of parts) {
    payload.set(p, at);
    at += p.length;
  }
  const manifest: RtzManifest = {
    format: 'retort-rtz',
    generatedBy: `retort (tfjs-layers ${tfl.version_layers})`,
    modelTopology: artifacts.modelTopology as object,
    weights,
  };
  return { bytes: assembleBundle(manifest, payload), tensors };
}

/** Writes the bundle of `model` to `path` atomically; an existing file needs `overwrite`. */
export async function writeBundle(
  model: tfl.LayersModel,
  path: string,
  opts: WriteBundleOptions = {},
): Promise<{ bytes: number; tensors: EncodedTensor[] }> {
  if (!opts.overwrite && existsSync(path))
    throw new RetortError(`rtz bundle ${path}: already exists (pass overwrite to replace it)`, {
      file: path,
    });
  const { bytes, tensors } = await encodeBundle(model, opts.encodings ? { encodings: opts.encodings } : {});
  writeFileAtomic(path, bytes);
  return { bytes: bytes.length, tensors };
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The manifest entry `w` checked against the payload of `size` bytes; returns it typed. */
function checkEntry(w: unknown, i: number, size: number, fail: (m: string) => never): RtzTensorEntry {
  if (typeof w !== 'object' || w === null) fail(`manifest weight ${i} is not an object`);
  const e = w as Record<string, unknown>;
  const name =
    typeof e['name'] === 'string' && e['name'] !== '' ? e['name'] : fail(`manifest weight ${i} has no name`);
  const where = `tensor '${name}'`;
  const shape = e['shape'];
  if (!Array.isArray(shape) || shape.length > 8 || !shape.every(isCount))
    fail(`${where}: shape ${JSON.stringify(shape)} is not a list of at most 8 sizes`);
  if (e['dtype'] !== 'float32') fail(`${where}: dtype ${JSON.stringify(e['dtype'])}, bundles hold float32`);
  if (typeof e['encoding'] !== 'string' || !RTZ_ENCODINGS.includes(e['encoding'] as RtzEncoding))
    fail(`${where}: unknown encoding ${JSON.stringify(e['encoding'])} (known: ${RTZ_ENCODINGS.join(', ')})`);
  const { offset, length, sha256: digest } = e;
  if (!isCount(offset) || !isCount(length) || offset + length > size)
    fail(`${where}: bytes [${String(offset)}, +${String(length)}) lie outside the ${size}-byte payload`);
  if (typeof digest !== 'string' || !/^[0-9a-f]{64}$/.test(digest))
    fail(`${where}: sha256 is not 64 hex digits`);
  return w as RtzTensorEntry;
}

/** Names of the manifest's tensors whose bytes no longer match their sha256 (best effort). */
function damagedTensors(stored: Uint8Array, payload: Uint8Array): string[] {
  try {
    const m = JSON.parse(inflateRawSync(stored, { maxOutputLength: MAX_MANIFEST }).toString('utf8'));
    return (m.weights as RtzTensorEntry[])
      .filter(
        (w) =>
          isCount(w.offset) &&
          isCount(w.length) &&
          w.offset + w.length <= payload.length &&
          sha256(payload.subarray(w.offset, w.offset + w.length)).toString('hex') !== w.sha256,
      )
      .map((w) => w.name);
  } catch {
    return [];
  }
}

/**
 * Checks the bytes of a bundle (`file` names it in errors) and returns its manifest, every entry
 * validated against the payload, and the payload.
 */
export function parseBundle(bytes: Uint8Array, file: string): { manifest: RtzManifest; payload: Uint8Array } {
  const fail = (m: string): never => {
    throw new RetortError(`rtz bundle ${file}: ${m}`, { file });
  };
  if (bytes.length < HEADER + DIGEST)
    fail(`truncated: ${bytes.length} bytes, a bundle has at least ${HEADER + DIGEST}`);
  if (MAGIC.some((b, i) => bytes[i] !== b)) fail('not a Retort .rtz bundle (wrong magic bytes)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== VERSION) fail(`format version ${version}, this Retort reads version ${VERSION}`);
  const stored = view.getUint32(12, true);
  const raw = view.getUint32(16, true);
  if (stored > MAX_MANIFEST || raw > MAX_MANIFEST)
    fail(
      `manifest too large: ${formatBytes(Math.max(stored, raw))}, the limit is ${formatBytes(MAX_MANIFEST)}`,
    );
  const payloadLength = view.getBigUint64(20, true);
  const expected = BigInt(HEADER + stored + DIGEST) + payloadLength;
  if (expected > BigInt(bytes.length))
    fail(`truncated: ${bytes.length} bytes, its header declares ${expected} (a partial copy?)`);
  if (expected < BigInt(bytes.length))
    fail(`${BigInt(bytes.length) - expected} bytes of trailing data after the bundle`);
  const end = bytes.length - DIGEST;
  const manifestBytes = bytes.subarray(HEADER, HEADER + stored);
  const payload = bytes.subarray(HEADER + stored, end);
  if (!sha256(bytes.subarray(0, end)).equals(bytes.subarray(end))) {
    const bad = damagedTensors(manifestBytes, payload);
    fail(
      `checksum mismatch, the file is damaged: ${
        bad.length > 0
          ? `the bytes of ${bad.map((n) => `tensor '${n}'`).join(', ')} differ from their sha256`
          : 'its header or manifest changed'
      }`,
    );
  }
  let manifest: Record<string, unknown>;
  try {
    // The bound stops a deflate bomb at the size the header declares (at least 1: zlib's minimum).
    const json = inflateRawSync(manifestBytes, { maxOutputLength: Math.max(raw, 1) });
    if (json.length !== raw) fail(`manifest inflates to ${json.length} bytes, its header says ${raw}`);
    manifest = JSON.parse(json.toString('utf8'));
  } catch (e) {
    if (e instanceof RetortError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      return fail(`manifest inflates past the ${raw} bytes its header declares`);
    return fail(`manifest is not deflated JSON (${messageOf(e)})`);
  }
  if (typeof manifest !== 'object' || manifest === null || manifest['format'] !== 'retort-rtz')
    fail(`manifest is not a retort-rtz manifest`);
  if (typeof manifest['modelTopology'] !== 'object' || manifest['modelTopology'] === null)
    fail('manifest has no modelTopology');
  if (!Array.isArray(manifest['weights'])) fail('manifest has no weights list');
  const weights = (manifest['weights'] as unknown[]).map((w, i) => checkEntry(w, i, payload.length, fail));
  const names = new Set<string>();
  let values = 0;
  for (const w of weights) {
    if (names.has(w.name)) fail(`tensor '${w.name}' appears twice in the manifest`);
    names.add(w.name);
    values += w.shape.reduce((a, b) => a * b, 1);
    if (values > MAX_VALUES) fail(`the weights hold over ${MAX_VALUES} values, the limit`);
    if (sha256(payload.subarray(w.offset, w.offset + w.length)).toString('hex') !== w.sha256)
      fail(`tensor '${w.name}': its bytes differ from their sha256`);
  }
  return { manifest: manifest as unknown as RtzManifest, payload };
}

/**
 * Loads a bundle (a path, or its bytes with `name` for errors) as the layers model it was written
 * from: the same topology through tf.loadLayersModel and bit-identical float32 weights.
 */
export async function loadBundle(
  source: string | Uint8Array,
  opts: { name?: string } = {},
): Promise<tfl.LayersModel> {
  const file = typeof source === 'string' ? source : (opts.name ?? '<bytes>');
  const bytes = typeof source === 'string' ? readFileBounded(source, MAX_FILE, 'rtz bundle') : source;
  const { manifest, payload } = parseBundle(bytes, file);
  const total = manifest.weights.reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1), 0);
  const weightData = new Uint32Array(total);
  let at = 0;
  for (const w of manifest.weights) {
    try {
      const bits = decodeTensor(w.encoding, payload.subarray(w.offset, w.offset + w.length), w.shape);
      weightData.set(bits, at);
      at += bits.length;
    } catch (e) {
      throw new RetortError(`rtz bundle ${file}: tensor '${w.name}': ${messageOf(e)}`, { file, cause: e });
    }
  }
  let model: tfl.LayersModel;
  try {
    model = await tfl.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: manifest.modelTopology,
        weightSpecs: manifest.weights.map((w) => ({ name: w.name, shape: w.shape, dtype: w.dtype })),
        weightData: weightData.buffer,
      }),
    );
  } catch (e) {
    throw new RetortError(`rtz bundle ${file}: ${messageOf(e)}`, { file, cause: e });
  }
  if (hashedLayers(model).length === 0) return model;
  // A HashedNets bundle stores buckets and seeds; it loads as the plain model they expand to, the
  // model the compression handed to its exporters (same kernels, bit for bit).
  try {
    return unhashModel(model);
  } catch (e) {
    throw new RetortError(`rtz bundle ${file}: ${messageOf(e)}`, { file, cause: e });
  } finally {
    model.dispose();
  }
}
