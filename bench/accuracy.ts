/**
 * `npm run bench:accuracy`: the Fashion-MNIST accuracy table of the distillation core. Trains the
 * teacher (configs/fashion-mnist/baseline/resnet20.yaml) unless a finished run with the same config
 * exists, then the student on labels only and with KD (and DKD), each over several seeds with the
 * same epochs, and writes bench/results/accuracy-fashion-mnist.md with means, spreads and wall times.
 *
 *   npm run bench:accuracy -- [--seeds 3] [--epochs N] [--runs runs] [--methods kd,dkd]
 */
import 'retort-kd-native';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadExperiment, type RunResults, writeFileAtomic } from 'retort-kd';
import { argOf, meanSd, runOrReuse } from './lib/runs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name: string, def: string): string => argOf(args, name, def);
const seeds = Number(opt('seeds', '3'));
const epochs = opt('epochs', '');
const runs = opt('runs', 'runs');
const methods = opt('methods', 'kd,dkd').split(',').filter(Boolean);
const cfg = (p: string) => join(root, 'configs/fashion-mnist', p);

async function run(file: string, sets: string[]): Promise<RunResults> {
  return runOrReuse(file, [...sets, ...(epochs ? [`epochs=${epochs}`] : [])], runs);
}

const stats = meanSd;

const t0 = performance.now();
const teacher = await run(cfg('baseline/resnet20.yaml'), []);
const rows: { label: string; rs: RunResults[] }[] = [];
const groups: [string, string, string][] = [
  ['student, labels only', 'baseline/resnet8.yaml', 'ce'],
  ...methods.map((m): [string, string, string] => [
    `student, ${m.toUpperCase()}`,
    `${m}/resnet8-from-resnet20.yaml`,
    m,
  ]),
];
for (const [label, file, tag] of groups) {
  const rs: RunResults[] = [];
  for (let s = 1; s <= seeds; s++) {
    const base = loadExperiment(cfg(file));
    rs.push(
      await run(
        cfg(file),
        [`seed=${s}`, `name=${base.name}-s${s}`, `teacher.run=${join(runs, teacher.name)}`].filter(
          (x) => tag !== 'ce' || !x.startsWith('teacher'),
        ),
      ),
    );
  }
  rows.push({ label, rs });
}
const wall = (performance.now() - t0) / 1000;
const lines = [
  '# Fashion-MNIST: distillation core',
  '',
  `Command: \`npm run bench:accuracy -- ${args.join(' ')}\` — wall time ${(wall / 60).toFixed(1)} min on this machine (runs reused from earlier invocations count as 0).`,
  `Seeds: ${seeds}; epochs: ${epochs || 'as in the configs'}. Test split (10,000 images).`,
  '',
  '| run | model | params (trainable+BN stats) | test top-1 mean ± sd | seeds | train time per run |',
  '| --- | --- | ---: | ---: | ---: | ---: |',
  `| teacher | ${teacher.model} | ${teacher.params} | ${teacher.testTop1.toFixed(2)}% | 1 | ${teacher.trainSeconds.toFixed(0)} s |`,
  ...rows.map(({ label, rs }) => {
    const { m, sd } = stats(rs.map((r) => r.testTop1));
    const secs = stats(rs.map((r) => r.trainSeconds)).m;
    return `| ${label} | ${rs[0]!.model} | ${rs[0]!.params} | ${m.toFixed(2)} ± ${sd.toFixed(2)}% | ${rs.length} | ${secs.toFixed(0)} s |`;
  }),
  '',
  'Per-seed top-1: ' +
    rows.map(({ label, rs }) => `${label}: ${rs.map((r) => r.testTop1.toFixed(2)).join(', ')}`).join('; '),
  '',
];
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileAtomic(join(root, 'bench/results/accuracy-fashion-mnist.md'), lines.join('\n'));
console.log(lines.join('\n'));
