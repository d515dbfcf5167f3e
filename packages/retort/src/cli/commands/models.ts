/** `retort models`: the zoo's names, descriptions and parameter counts for an input shape. */
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { buildModel, zoo } from '../../models/index.js';
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import type { Command } from '../command.js';

const options: readonly OptionSpec[] = [
  {
    name: 'input',
    kind: 'string',
    help: 'input shape H,W,C used for the parameter counts',
    default: '32,32,3',
  },
  { name: 'classes', kind: 'number', help: 'number of classes', default: 100 },
  { name: 'help', kind: 'flag', help: 'show this help' },
];

export const modelsCommand: Command = {
  name: 'models',
  summary: 'list the model zoo with parameter counts',
  async run(argv) {
    const o = parseOptions(argv, options, 'models');
    if (o['help'] === true) {
      console.log(helpText('models', this.summary, options));
      return;
    }
    const shape = String(o['input']).split(',').map(Number);
    if (shape.length !== 3 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new Error(`retort models: --input expects H,W,C, got '${o['input']}'`);
    }
    await tf.setBackend('native');
    console.log(`| model | params (${shape.join('x')}, ${o['classes']} classes) | description |`);
    console.log('| --- | ---: | --- |');
    for (const name of zoo.list()) {
      const m = buildModel(name, {
        inputShape: shape as [number, number, number],
        numClasses: Number(o['classes']),
      });
      const params = m.trainableWeights.reduce(
        (a, w) => a + w.shape.reduce((x, y) => (x ?? 1) * (y ?? 1), 1)!,
        0,
      );
      console.log(`| ${name} | ${params.toLocaleString('en-US')} | ${zoo.get(name).description} |`);
      m.dispose();
    }
  },
};
