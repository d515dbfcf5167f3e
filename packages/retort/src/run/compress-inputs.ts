/**
 * What `retort compress` starts from: the model to compress, the frozen copy of it that teaches
 * the fine-tuning stages (KD from the original), and the data. Either a Retort run folder
 * (`student: { run }`) or a model the user already has (`model: { onnx | tfjs }` + `data`): an ONNX
 * CNN is imported into a trainable tfjs model (models/onnx-import.ts), a tfjs layers model is
 * loaded as it is; convs whose BatchNorm an export folded away get one back (restore-bn.ts). The model's own normalization (`model.mean` / `std`) becomes the data's, so that
 * every stage and every export takes exactly the inputs the original model took.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { restoreBatchNorms } from '../compress/restore-bn.js';
import { runFolder } from '../config/paths.js';
import { buildData, type DataConfig, type ExperimentData } from '../data/build.js';
import { takeBatches } from '../data/loader.js';
import { importOnnx } from '../models/onnx-import.js';
import { loadLayersModelFile } from '../teachers/tfjs.js';
import { RetortError } from '../util/errors.js';
import { readFileBounded } from '../util/read.js';
import type { PipelineConfig } from './compress.js';
import { loadRun } from './load.js';

export interface PipelineInputs {
  model: tfl.LayersModel;
  teacher: tfl.LayersModel;
  data: ExperimentData;
  /** Where the model came from, for the log. */
  description: string;
}

/** Loads what `cfg` names; run names resolve under `runsRoot`. */
export async function loadPipelineInputs(cfg: PipelineConfig, runsRoot = 'runs'): Promise<PipelineInputs> {
  if (cfg.student !== undefined) {
    const dir = runFolder(cfg.student.run, runsRoot);
    const student = await loadRun(dir, 'compress');
    const teacher = await loadRun(dir, 'compress');
    return { model: student.model, teacher: teacher.model, data: student.data, description: `run ${dir}` };
  }
  const src = cfg.model;
  if (src === undefined || cfg.data === undefined)
    throw new RetortError(`compress '${cfg.name}': give student (a run) or model with data`);
  const data = await pipelineData(cfg);
  const file = (src.onnx ?? src.tfjs)!;
  const load = async (): Promise<tfl.LayersModel> => {
    if (src.onnx !== undefined) {
      const bytes = readFileBounded(src.onnx, 2 ** 31 - 1, 'ONNX model');
      return importOnnx(bytes, {
        layout: src.layout ?? 'nchw',
        inputShape: data.shape,
        file: src.onnx,
        name: 'model',
      }).model;
    }
    return loadLayersModelFile(file);
  };
  let model = await load();
  const teacher = await load();
  checkFits(model, data, file);
  let description = `${src.onnx !== undefined ? 'onnx' : 'tfjs'} ${file}`;
  if (src.restoreBatchNorm) {
    const batches = (await takeBatches(data.trainPlain, 8)).map((b) =>
      tf.tensor4d(b.x, [b.n, ...data.shape]),
    );
    const r = restoreBatchNorms(model, batches);
    tf.dispose(batches);
    if (r.restored.length > 0) {
      model.dispose();
      model = r.model;
      description += `; a BatchNorm restored after ${r.restored.length} convs that had none (identity until trained)`;
    }
  }
  return { model, teacher, data, description };
}

/** The data of a `model` pipeline, normalized as the model was trained. */
export async function pipelineData(cfg: PipelineConfig): Promise<ExperimentData> {
  const src = cfg.model;
  if (src === undefined || cfg.data === undefined)
    throw new RetortError(`compress '${cfg.name}': give model with data`);
  await tf.setBackend('native');
  return buildData(withModelNormalization(cfg.data, src, (src.onnx ?? src.tfjs)!), cfg.seed);
}

/** The data config with the model's normalization; refuses a different one given for the data. */
function withModelNormalization(
  data: DataConfig,
  src: { mean?: number[] | undefined; std?: number[] | undefined },
  file: string,
): DataConfig {
  if (src.mean === undefined || src.std === undefined) {
    if (data.normalize === undefined)
      throw new RetortError(
        `compress: say how ${file} normalizes its inputs: model.mean and model.std of [0, 1] pixels (mean [0], std [1] for raw pixels), or data.normalize`,
        { file },
      );
    return data;
  }
  const given = data.normalize;
  if (given !== undefined && JSON.stringify(given) !== JSON.stringify({ mean: src.mean, std: src.std }))
    throw new RetortError(
      `compress: data.normalize (mean ${given.mean}, std ${given.std}) differs from model.mean/std (${src.mean}, ${src.std}) of ${file}; give one`,
      { file },
    );
  return { ...data, normalize: { mean: src.mean, std: src.std } };
}

/** The model must take the data's images and give one logit per class. */
function checkFits(model: tfl.LayersModel, data: ExperimentData, file: string): void {
  const inShape = model.inputs[0]!.shape.slice(1);
  if (inShape.some((d, i) => d !== null && d !== data.shape[i]))
    throw new RetortError(
      `compress: ${file} takes [${inShape.join(', ')}] images, the data has [${data.shape.join(', ')}]`,
      { file },
    );
  const out = model.outputs[0]!.shape;
  if (out.length !== 2 || out[1] !== data.numClasses)
    throw new RetortError(
      `compress: ${file} outputs [${out.join(', ')}], the data has ${data.numClasses} classes (expected [N, ${data.numClasses}] logits)`,
      { file },
    );
}
