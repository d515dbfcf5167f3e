/**
 * What schemes with several trained networks (peers, generations) save besides the run's model:
 * each network as a run folder of its own (config.json, model.ckpt, results.json) that loadRun,
 * `retort eval` and `retort export` read like any run, and the test accuracy of their ensemble.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { Experiment } from '../../config/experiment.js';
import type { Loader } from '../../data/loader.js';
import { type ModelConfig, modelLabel } from '../../models/configured.js';
import { saveModelWeights } from '../../train/checkpoint.js';
import { topkCorrect } from '../../train/metrics.js';
import { writeResults } from '../../train/run-dir.js';
import { evaluate } from '../../train/trainer.js';
import { writeFileAtomic } from '../../util/atomic.js';

export interface SideRun {
  label: string;
  model: string;
  params: number;
  testTop1: number;
  testTop5: number;
  testLoss: number;
  dir: string;
}

/**
 * Saves `model` as the run folder `dir`: its config is the experiment's with this network's model
 * and name, and no scheme (the folder holds a trained network, loadable on its own).
 */
export async function saveSideRun(o: {
  dir: string;
  label: string;
  exp: Experiment;
  modelConfig: ModelConfig;
  model: tfl.LayersModel;
  test: Loader;
  extra?: Record<string, unknown>;
}): Promise<SideRun> {
  mkdirSync(o.dir, { recursive: true });
  const { scheme: _scheme, ...rest } = o.exp;
  const config = { ...rest, name: `${o.exp.name}-${o.label}`, model: o.modelConfig };
  writeFileAtomic(join(o.dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  saveModelWeights(join(o.dir, 'model.ckpt'), o.model, { model: o.modelConfig, experiment: config.name });
  const t = await evaluate(o.model, o.test);
  const out: SideRun = {
    label: o.label,
    model: modelLabel(o.modelConfig),
    params: o.model.countParams(),
    testTop1: t.top1,
    testTop5: t.top5,
    testLoss: t.loss,
    dir: o.dir,
  };
  writeResults(o.dir, { ...out, ...o.extra });
  return out;
}

/** Top-1 (percent) of the models' averaged logits on `loader`. */
export async function ensembleTop1(models: readonly tfl.LayersModel[], loader: Loader): Promise<number> {
  let hit = 0;
  let n = 0;
  const shape = models[0]!.inputs[0]!.shape.slice(1) as [number, number, number];
  for await (const b of loader.epoch()) {
    const mean = tf.tidy(() => {
      const x = tf.tensor4d(b.x, [b.n, ...shape]);
      const outs = models.map((m) => m.predict(x) as tf.Tensor2D);
      return tf.div(tf.addN(outs), models.length) as tf.Tensor2D;
    });
    const K = mean.shape[1];
    hit += topkCorrect(mean.dataSync() as Float32Array, b.y, K, [1])[0]!;
    n += b.n;
    mean.dispose();
  }
  return (100 * hit) / n;
}
