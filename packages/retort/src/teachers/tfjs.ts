/**
 * A tfjs model saved on disk (model.json + weight shards) as a teacher: a layers model (as
 * `model.save('file://...')`, tensorflowjs_converter of a Keras model or Retort's own export write
 * it), tapped by layer name, or a graph model (tensorflowjs_converter of a SavedModel or frozen
 * graph), run by @tensorflow/tfjs-converter and tapped by node name. The file handler here reads
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
import { graphTeacher } from './tfjs-graph.js';
import type { Teacher } from './types.js';

const MAX_JSON = 64 * 2 ** 20;
const MAX_SHARD = 2 ** 31 - 1;

interface ModelJson {
  format?: string;
  modelTopology?: unknown;
  weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  signature?: object;
  userDefinedMetadata?: Record<string, object>;
  modelInitializer?: object;
}

/** Reads a layers model's `modelJson` and its shards (all inside its folder) into tfjs model artifacts. */
export function readLayersArtifacts(modelJson: string): tf.io.ModelArtifacts {
  const a = readTfjsArtifacts(modelJson);
  if (a.format === 'graph-model')
    throw new RetortError(`tfjs model ${modelJson}: a graph model, where a layers model was expected`, {
      file: modelJson,
    });
  return a;
}

/** Reads `modelJson` (layers or graph model) and its shards, all inside its folder. */
export function readTfjsArtifacts(modelJson: string): tf.io.ModelArtifacts & { modelTopology: object } {
  const text = readFileBounded(modelJson, MAX_JSON, 'tfjs model').toString('utf8');
  let json: ModelJson;
  try {
    json = JSON.parse(text) as ModelJson;
  } catch (e) {
    throw new RetortError(`tfjs model ${modelJson}: not JSON (${(e as Error).message})`, { file: modelJson });
  }
  if (typeof json !== 'object' || json === null)
    throw new RetortError(`tfjs model ${modelJson}: not a model.json object`, { file: modelJson });
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
  return {
    ...(json.format !== undefined ? { format: json.format } : {}),
    modelTopology: json.modelTopology as object,
    weightSpecs: specs,
    weightData: weightData.buffer,
    ...(json.signature ? { signature: json.signature } : {}),
    ...(json.userDefinedMetadata ? { userDefinedMetadata: json.userDefinedMetadata } : {}),
    ...(json.modelInitializer ? { modelInitializer: json.modelInitializer } : {}),
  };
}

/** Loads a layers model from its model.json (weights read through readLayersArtifacts). */
export async function loadLayersModelFile(modelJson: string): Promise<tfl.LayersModel> {
  return layersModelFrom(modelJson, readLayersArtifacts(modelJson));
}

/** A layers model from artifacts already read from `modelJson`; tfjs's errors name the file. */
async function layersModelFrom(modelJson: string, artifacts: tf.io.ModelArtifacts): Promise<tfl.LayersModel> {
  try {
    return await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (e) {
    throw new RetortError(`tfjs model ${modelJson}: ${(e as Error).message}`, { file: modelJson });
  }
}

export interface TfjsTeacherConfig extends TeacherInput {
  /** The model.json. */
  path: string;
  /** Aliases for layer names (layers models) or node names (graph models): {role: name}. */
  taps?: Readonly<Record<string, string>> | undefined;
}

/**
 * A tfjs model folder as a frozen teacher, its input adapted from the student's batches. `taps`:
 * the teacher taps the run's losses ask for (a graph model checks them against its nodes now).
 */
export async function tfjsTeacher(
  cfg: TfjsTeacherConfig,
  data: DataInput,
  where = 'teacher',
  taps: readonly string[] = [],
): Promise<Teacher> {
  const artifacts = readTfjsArtifacts(cfg.path);
  if (artifacts.format === 'graph-model') return graphTeacher(cfg, artifacts, data, taps, where);
  const model = await layersModelFrom(cfg.path, artifacts);
  const shape = model.inputs[0]!.shape;
  const [h, w, c] = shape.slice(1) as (number | null)[];
  let adapter: ReturnType<typeof inputAdapter>;
  try {
    adapter = inputAdapter(data, fixedInput([h ?? null, w ?? null, c ?? null], cfg, cfg.path, where), where);
  } catch (e) {
    model.dispose();
    throw e;
  }
  const inner = layersTeacher(model, {
    description: `tfjs ${cfg.path}`,
    adapt: adapter.adapt ?? undefined,
    adaptKey: adapter.key + JSON.stringify(Object.entries(cfg.taps ?? {}).sort()),
  });
  const aliases = cfg.taps;
  if (!aliases) return inner;
  return { ...inner, tap: (list) => inner.tap(list.map((t) => aliases[t] ?? t)) };
}
