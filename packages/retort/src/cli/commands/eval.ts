/** `retort eval <run folder>`: test accuracy of a run's model.ckpt (or of --checkpoint with --model). */
import '@retort/backend-native';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrThrow } from '../../config/errors.js';
import { experimentSchema } from '../../config/experiment.js';
import { buildData } from '../../data/build.js';
import { buildModel } from '../../models/index.js';
import { loadModelWeights } from '../../train/checkpoint.js';
import { evaluate } from '../../train/trainer.js';
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import type { Command } from '../main.js';

const options: readonly OptionSpec[] = [{ name: 'help', kind: 'flag', help: 'show this help' }];

export const evalCommand: Command = {
  name: 'eval',
  summary: "evaluate a run's model on the test split (loss, top-1, top-5)",
  async run(argv) {
    const pos: string[] = [];
    const o = parseOptions(argv, options, 'eval', pos);
    if (o['help'] === true || pos.length !== 1) {
      console.log(`usage: retort eval <run folder>\n\n${helpText('eval', this.summary, options)}`);
      if (pos.length !== 1 && o['help'] !== true) throw new Error('retort eval: give one run folder');
      return;
    }
    const dir = pos[0]!;
    const cfgPath = join(dir, 'config.json');
    const ckpt = join(dir, 'model.ckpt');
    for (const p of [cfgPath, ckpt])
      if (!existsSync(p)) throw new Error(`retort eval: ${p} not found (is ${dir} a finished run?)`);
    const exp = parseOrThrow(experimentSchema, JSON.parse(readFileSync(cfgPath, 'utf8')), cfgPath);
    await tf.setBackend('native');
    const data = buildData(exp.data, exp.seed);
    const model = buildModel(exp.model.name, {
      ...exp.model.options,
      inputShape: data.shape,
      numClasses: data.numClasses,
    });
    loadModelWeights(ckpt, model);
    const r = evaluate(model, data.test);
    console.log(JSON.stringify({ run: dir, model: exp.model.name, params: model.countParams(), ...r }));
  },
};
