/**
 * tfjs "layers model" format, as `tf.loadLayersModel` reads it (in a browser from a URL, in Node
 * from files): model.json (topology + weights manifest) and one binary shard, written atomically
 * without tfjs-node. The zoo's custom layers serialize under registered class names
 * (RetortChannelSlice for ShuffleNetV2; a loader must import retort's models module first) and its
 * batch-norm layer as the standard BatchNormalization.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { writeFileAtomic } from '../util/atomic.js';

export const WEIGHTS_FILE = 'group1-shard1of1.bin';

/** Writes `dir`/model.json and `dir`/group1-shard1of1.bin. */
export async function exportTfjs(model: tfl.LayersModel, dir: string): Promise<void> {
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
  const bytes = new Uint8Array(Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data);
  const json = {
    modelTopology: artifacts.modelTopology,
    format: 'layers-model',
    generatedBy: `retort (tfjs-layers ${tfl.version_layers})`,
    convertedBy: null,
    weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs }],
  };
  writeFileAtomic(join(dir, WEIGHTS_FILE), bytes);
  writeFileAtomic(join(dir, 'model.json'), JSON.stringify(json));
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
