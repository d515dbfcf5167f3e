/**
 * A tfjs layers model saved on disk (model.json + weight shards, as `model.save('file://...')`,
 * tensorflowjs_converter or Retort's own export write it) as a teacher. The file handler here reads
 * only inside the model's folder: a manifest path that climbs out of it ('../', an absolute path, a
 * link elsewhere) is refused, since model.json files come from other people.
 */
import { realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { RetortError } from '../util/errors.js';
import { readFileBounded } from '../util/read.js';
import { layersTeacher } from './layers.js';
import { type DataInput, fixedInput, inputAdapter, type TeacherInput } from './preprocess.js';
import type { Teacher } from './types.js';

const MAX_JSON = 64 * 2 ** 20;
const MAX_SHARD = 2 ** 31 - 1;

interface ModelJson {
  format?: string;
  modelTopology?: unknown;
  weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

/** Reads `modelJson` and its shards (all inside its folder) into tfjs model artifacts. */
export function readLayersArtifacts(modelJson: string): tf.io.ModelArtifacts {
  const text = readFileBounded(modelJson, MAX_JSON, 'tfjs model').toString('utf8');
  let json: ModelJson;
  try {
    json = JSON.parse(text) as ModelJson;
  } catch (e) {
    throw new RetortError(`tfjs model ${modelJson}: not JSON (${(e as Error).message})`, { file: modelJson });
  }
  if (json.format === 'graph-model')
    throw new RetortError(
      `tfjs model ${modelJson}: a graph model (from tensorflowjs_converter of a SavedModel); Retort reads layers models (Keras / tfjs-layers), whose layers it can tap`,
      { file: modelJson },
    );
  if (json.modelTopology === undefined || !Array.isArray(json.weightsManifest))
    throw new RetortError(`tfjs model ${modelJson}: needs modelTopology and weightsManifest`, {
      file: modelJson,
    });
  const dir = realpathSync(dirname(modelJson));
  const buffers: Uint8Array[] = [];
  const specs: tf.io.WeightsManifestEntry[] = [];
  for (const group of json.weightsManifest) {
    if (!Array.isArray(group.paths) || !Array.isArray(group.weights))
      throw new RetortError(`tfjs model ${modelJson}: each weightsManifest entry needs paths and weights`);
    for (const p of group.paths) {
      if (typeof p !== 'string' || isAbsolute(p) || p.includes('\0'))
        throw new RetortError(
          `tfjs model ${modelJson}: weight path ${JSON.stringify(p)} is not relative to the model's folder`,
        );
      const file = join(dir, p);
      let real: string;
      try {
        real = realpathSync(file);
      } catch {
        throw new RetortError(`tfjs model ${modelJson}: weight file ${p} not found`, { file });
      }
      const rel = relative(dir, real);
      if (rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel))
        throw new RetortError(`tfjs model ${modelJson}: weight path ${p} leads outside the model's folder`);
      buffers.push(new Uint8Array(readFileBounded(real, MAX_SHARD, 'tfjs weight shard')));
    }
    specs.push(...group.weights);
  }
  const total = buffers.reduce((a, b) => a + b.length, 0);
  const weightData = new Uint8Array(total);
  let o = 0;
  for (const b of buffers) {
    weightData.set(b, o);
    o += b.length;
  }
  return { modelTopology: json.modelTopology as object, weightSpecs: specs, weightData: weightData.buffer };
}

/** Loads a layers model from its model.json (weights read through readLayersArtifacts). */
export async function loadLayersModelFile(modelJson: string): Promise<tfl.LayersModel> {
  const artifacts = readLayersArtifacts(modelJson);
  try {
    return await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (e) {
    throw new RetortError(`tfjs model ${modelJson}: ${(e as Error).message}`, { file: modelJson });
  }
}

/** A tfjs layers model folder as a frozen teacher, its input adapted from the student's batches. */
export async function tfjsTeacher(
  cfg: TeacherInput & { path: string },
  data: DataInput,
  where = 'teacher',
): Promise<Teacher> {
  const model = await loadLayersModelFile(cfg.path);
  const shape = model.inputs[0]!.shape;
  const [h, w, c] = shape.slice(1) as (number | null)[];
  let adapter: ReturnType<typeof inputAdapter>;
  try {
    adapter = inputAdapter(data, fixedInput([h ?? null, w ?? null, c ?? null], cfg, cfg.path, where), where);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return layersTeacher(model, {
    description: `tfjs ${cfg.path}`,
    adapt: adapter.adapt ?? undefined,
    adaptKey: adapter.key,
  });
}
