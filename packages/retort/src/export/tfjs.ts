/**
 * tfjs "layers model" format, as `tf.loadLayersModel` reads it (in a browser from a URL, in Node
 * from files): model.json (topology + weights manifest) and one binary shard, written atomically
 * without tfjs-node. The zoo's custom layers serialize under registered class names
 * (RetortChannelSlice for ShuffleNetV2; a loader must import retort's models module first) and its
 * batch-norm layer as the standard BatchNormalization.
 *
 * `quantize` stores each float32 weight as uint8 or uint16 codes with an affine (min, scale) per
 * tensor, in the manifest form tensorflowjs_converter's --quantize_uint8/--quantize_uint16 write and
 * tfjs-core's decodeWeights reads back as code * scale + min: 1/4 or 1/2 of the fp32 bytes, at most
 * half a step (scale / 2) off per weight. As the converter does, the range is widened to hold 0 and
 * min is nudged onto the grid, so 0 (a pruned weight) comes back exactly 0. `quantize: 'float16'`
 * stores IEEE half floats (export/float16.ts, round to nearest even), the manifest form of the
 * converter's --quantize_float16 that decodeWeights widens back to float32: half the fp32 bytes, a
 * relative error of at most 2^-11 per weight, and no range to choose (0 and small weights keep their
 * relative precision, which a per-tensor uint16 grid gives only to the largest ones).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { writeFileAtomic } from '../util/atomic.js';
import { toFloat16 } from './float16.js';

export const WEIGHTS_FILE = 'group1-shard1of1.bin';

export interface TfjsExportOptions {
  /** Store weights as uint8 or uint16 codes or as float16 (tfjs's quantized manifest); default fp32. */
  quantize?: 'uint8' | 'uint16' | 'float16';
}

/**
 * One float32 weight as affine codes: values [n] -> codes of `dtype` (little-endian) and the
 * min and scale that tfjs decodes them with.
 */
export function quantizeWeight(
  values: Float32Array,
  dtype: 'uint8' | 'uint16',
  name: string,
): { bytes: Uint8Array; min: number; scale: number } {
  const qmax = dtype === 'uint8' ? 255 : 65535;
  let lo = 0;
  let hi = 0;
  for (const v of values) {
    if (!Number.isFinite(v))
      throw new Error(`export tfjs: weight '${name}' holds ${v}, which cannot be quantized`);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  // An all-zero tensor has no range; any scale decodes its zero codes to 0.
  const scale = hi > lo ? (hi - lo) / qmax : 1;
  const min = -Math.round(-lo / scale) * scale;
  const size = dtype === 'uint8' ? 1 : 2;
  const bytes = new Uint8Array(size * values.length);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) {
    const q = Math.min(qmax, Math.max(0, Math.round((values[i]! - min) / scale)));
    if (size === 1) view.setUint8(i, q);
    else view.setUint16(2 * i, q, true);
  }
  return { bytes, min, scale };
}

/** Writes `dir`/model.json and `dir`/group1-shard1of1.bin (weights fp32, or `quantize`d). */
export async function exportTfjs(
  model: tfl.LayersModel,
  dir: string,
  opts: TfjsExportOptions = {},
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!artifacts?.weightData || !artifacts.weightSpecs)
    throw new Error(`export tfjs: model '${model.name}' gave no weights`);
  const data = artifacts.weightData;
  let bytes: Uint8Array = new Uint8Array(Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data);
  let specs = artifacts.weightSpecs;
  const quantize = opts.quantize;
  if (quantize !== undefined) {
    if (quantize !== 'uint8' && quantize !== 'uint16' && quantize !== 'float16')
      throw new Error(
        `export tfjs: quantize must be 'uint8', 'uint16' or 'float16', got '${String(quantize)}'`,
      );
    ({ bytes, specs } = quantizeAll(bytes, specs, quantize));
  }
  const json = {
    modelTopology: artifacts.modelTopology,
    format: 'layers-model',
    generatedBy: `retort (tfjs-layers ${tfl.version_layers})`,
    convertedBy: null,
    weightsManifest: [{ paths: [WEIGHTS_FILE], weights: specs }],
  };
  writeFileAtomic(join(dir, WEIGHTS_FILE), bytes);
  writeFileAtomic(join(dir, 'model.json'), JSON.stringify(json));
}

/** Quantizes every float32 weight of a save's data (other dtypes stay as they are). */
function quantizeAll(
  bytes: Uint8Array,
  specs: tf.io.WeightsManifestEntry[],
  dtype: 'uint8' | 'uint16' | 'float16',
): { bytes: Uint8Array; specs: tf.io.WeightsManifestEntry[] } {
  const parts: Uint8Array[] = [];
  const out: tf.io.WeightsManifestEntry[] = [];
  let at = 0;
  for (const spec of specs) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const size = spec.dtype === 'bool' ? 1 : 4;
    const raw = bytes.subarray(at, at + size * n);
    at += size * n;
    if (spec.dtype !== 'float32' || spec.quantization) {
      if (spec.dtype === 'string' || spec.quantization)
        throw new Error(`export tfjs: cannot quantize weight '${spec.name}' (${spec.dtype})`);
      parts.push(raw);
      out.push(spec);
      continue;
    }
    // A copy: the float view needs 4-byte alignment.
    const values = new Float32Array(raw.slice().buffer);
    if (dtype === 'float16') {
      parts.push(new Uint8Array(toFloat16(values, `weight '${spec.name}'`).buffer));
      out.push({ ...spec, quantization: { dtype } });
      continue;
    }
    const q = quantizeWeight(values, dtype, spec.name);
    parts.push(q.bytes);
    out.push({ ...spec, quantization: { dtype, min: q.min, scale: q.scale } });
  }
  const joined = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    joined.set(p, o);
    o += p.length;
  }
  return { bytes: joined, specs: out };
}

/** Loads a folder written by exportTfjs (Node: from files, through tfjs's own JSON reader). */
export async function loadTfjs(dir: string): Promise<tfl.LayersModel> {
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  const manifest = json.weightsManifest as { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  const weightData = new Uint8Array(readFileSync(join(dir, manifest[0]!.paths[0]!))).buffer;
  return tfl.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: manifest.flatMap((m) => m.weights),
      weightData,
    }),
  );
}
