/** A finished run folder's experiment, data and trained model (shared by eval and export). */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { parseOrThrow } from '../config/errors.js';
import { type Experiment, experimentSchema } from '../config/experiment.js';
import { buildData, type DataSplits, type ExperimentData } from '../data/build.js';
import { buildConfiguredModel } from '../models/configured.js';
// Installs the builder of `model: { space, candidate }` (a search space's candidate).
import '../search/candidate-model.js';
import { loadModelWeights } from '../train/checkpoint.js';

export async function loadRun(
  dir: string,
  command = 'loadRun',
  /** The splits of a run trained on data from code (`dataset: code`). */
  splits?: DataSplits,
): Promise<{ exp: Experiment; data: ExperimentData; model: tfl.LayersModel }> {
  const cfgPath = join(dir, 'config.json');
  const ckpt = join(dir, 'model.ckpt');
  for (const p of [cfgPath, ckpt])
    if (!existsSync(p)) throw new Error(`retort ${command}: ${p} not found (is ${dir} a finished run?)`);
  const exp = parseOrThrow(experimentSchema, JSON.parse(readFileSync(cfgPath, 'utf8')), cfgPath);
  await tf.setBackend('native');
  const data = buildData(exp.data, exp.seed, splits);
  // A model from user code runs that code: say which file, since run folders travel.
  if (exp.model.module !== undefined)
    process.stderr.write(`retort ${command}: importing model code ${exp.model.module}\n`);
  const model = await buildConfiguredModel(exp.model, {
    inputShape: data.shape,
    numClasses: data.numClasses,
  });
  loadModelWeights(ckpt, model);
  return { exp, data, model };
}
