/**
 * `retort models`: the zoo, one row per model (aliases beside their model), with parameter counts
 * for an input shape; `retort models <name>`: that model's layers and the tap names feature-based
 * losses use.
 */
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { lossRegistry } from '../../distill/registry.js';
import { modelStats } from '../../measure/model-stats.js';
import { withZeroInit } from '../../models/common.js';
import { buildModel, modelTaps, ZOO_ALIASES, zoo } from '../../models/index.js';
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import { type Command, SUMMARIES } from '../command.js';

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

const fmt = (n: number) => n.toLocaleString('en-US');
const trainableCount = (m: { trainableWeights: { shape: (number | null)[] }[] }) =>
  m.trainableWeights.reduce((a, w) => a + w.shape.reduce((x: number, y) => x * (y ?? 1), 1), 0);

export const modelsCommand: Command = {
  name: 'models',
  summary: SUMMARIES.models,
  async run(argv) {
    const names: string[] = [];
    const o = parseOptions(argv, options, 'models', names);
    if (o['help'] === true) {
      console.log(helpText('models [name]', this.summary, options));
      return;
    }
    if (names.length > 1)
      throw new Error(`retort models: give at most one model name, got ${names.join(' ')}`);
    const shape = String(o['input']).split(',').map(Number);
    if (shape.length !== 3 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new Error(`retort models: --input expects H,W,C, got '${o['input']}'`);
    }
    const opts = { inputShape: shape as [number, number, number], numClasses: Number(o['classes']) };
    await tf.setBackend('native');
    // Only shapes are read: zero weights build several times faster than the random ones.
    const build = (name: string) => withZeroInit(() => buildModel(name, opts));
    const at = `${shape.join('x')}, ${o['classes']} classes`;
    if (names.length === 1) {
      const name = names[0]!;
      const entry = zoo.get(name);
      const m = build(name);
      console.log(`${name}: ${entry.description}`);
      console.log(
        `\n| layer | type | output | params (${at}) | MACs per image |\n| --- | --- | --- | ---: | ---: |`,
      );
      const stats = modelStats(m);
      for (const r of stats.layers)
        console.log(
          `| ${r.name} | ${r.className} | ${r.outputShape.join('x')} | ${fmt(r.params)} | ${fmt(r.macs)} |`,
        );
      console.log(
        `\ntotal ${fmt(stats.params)} weights, ${fmt(stats.trainableParams)} trainable; ${fmt(stats.macs)} MACs per image`,
      );
      const taps = modelTaps(name, opts);
      console.log('\ntaps (feature layers, RepDistiller order; preact = before the last ReLU):');
      for (const [i, t] of taps.stages.entries())
        console.log(`  stage ${i}: ${t.output}${t.preact === t.output ? '' : `   preact: ${t.preact}`}`);
      if (taps.bnBeforeRelu.length > 0) console.log(`  bnBeforeRelu: ${taps.bnBeforeRelu.join(', ')}`);
      // Which roles each feature method binds (losses[].taps.student/teacher: { role: layer }).
      console.log('\nfeature methods and the roles they tap (bind each to a layer above):');
      for (const method of lossRegistry.list()) {
        const t = lossRegistry.get(method).needs.taps;
        if (t === undefined) continue;
        const roles = [...new Set([...t.student, ...t.teacher])];
        console.log(`  ${method}: ${roles.join(', ')}`);
      }
      m.dispose();
      return;
    }
    const aliases = new Map<string, string[]>();
    for (const [alias, target] of Object.entries(ZOO_ALIASES))
      aliases.set(target, [...(aliases.get(target) ?? []), alias]);
    console.log(`| model | aliases | params (${at}) | description |`);
    console.log('| --- | --- | ---: | --- |');
    for (const name of zoo.list().filter((n) => !(n in ZOO_ALIASES))) {
      const m = build(name);
      const params = trainableCount(m);
      console.log(
        `| ${name} | ${(aliases.get(name) ?? []).join(', ')} | ${fmt(params)} | ${zoo.get(name).description} |`,
      );
      m.dispose();
    }
  },
};
