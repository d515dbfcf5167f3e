/**
 * `npm run bench:zoo`: every distillation method of configs/fashion-mnist/<method>/ on the same
 * teacher (ResNet-20, trained by configs/fashion-mnist/baseline/resnet20.yaml, reused when finished)
 * and the same student (ResNet-8), the same budget and seeds, in the layout of RepDistiller's README
 * table: teacher, vanilla student, one row per method, mean ± sd over seeds, and the gain over vanilla.
 * Writes bench/results/zoo-fashion-mnist.md.
 *
 *   npm run bench:zoo -- [--seeds 3] [--epochs 3] [--runs runs] [--methods kd,crd,at,...] [--jobs 1]
 *
 * --jobs N trains N runs at once in child processes, the cores split between them.
 *
 * Budget: every run is `--epochs` epochs (default 3) of the full training set, no augmentation
 * (so the whole table — 3 seeds x (vanilla + 15 methods) — fits in about two hours on 2 cores).
 * Initialisation stages (FitNet's hint stage, AB, FSP, FT's paraphraser) keep their own epochs
 * from the config; only the last stage gets `--epochs`.
 */
import '@retort/backend-native';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadExperiment } from '../packages/retort/src/config/load.js';
import type { RunResults } from '../packages/retort/src/train/experiment.js';
import { writeFileAtomic } from '../packages/retort/src/util/atomic.js';
import { argOf, meanSd, type RunTask, runMany, runOrReuse } from './lib/runs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const seeds = Number(argOf(args, 'seeds', '3'));
const epochs = Number(argOf(args, 'epochs', '3'));
const runs = argOf(args, 'runs', 'runs');
const jobs = Number(argOf(args, 'jobs', '1'));
const cfgDir = join(root, 'configs/fashion-mnist');
const PAIR = 'resnet8-from-resnet20.yaml';
const NOT_METHODS = new Set(['baseline', 'demo']);
const methods = argOf(
  args,
  'methods',
  readdirSync(cfgDir)
    .filter((d) => !NOT_METHODS.has(d) && existsSync(join(cfgDir, d, PAIR)))
    .sort()
    .join(','),
)
  .split(',')
  .filter(Boolean);

const noAug = ['data.cropPadding=0', 'data.hflip=false'];
/** Overrides that put a config on the table's budget: the last stage (or the run) gets `epochs`. */
function budget(file: string): string[] {
  const exp = loadExperiment(file);
  const last = exp.stages ? `stages[${exp.stages.length - 1}].epochs=${epochs}` : `epochs=${epochs}`;
  return [...noAug, last];
}

const t0 = performance.now();
const teacher = await runOrReuse(join(cfgDir, 'baseline/resnet20.yaml'), [], runs);
const teacherRun = join(runs, teacher.name);
const labels = ['vanilla', ...methods];
const tasks: RunTask[] = [];
// Seed-major order: with several jobs, every method has its first seed early.
for (let s = 1; s <= seeds; s++)
  for (const method of labels) {
    const file = method === 'vanilla' ? join(cfgDir, 'baseline/resnet8.yaml') : join(cfgDir, method, PAIR);
    const base = loadExperiment(file);
    const sets = [...budget(file), `seed=${s}`, `name=zoo-${base.name}-e${epochs}-s${s}`];
    if (base.teacher) sets.push(`teacher.run=${teacherRun}`);
    tasks.push({ file, sets });
  }
const done = await runMany(tasks, runs, jobs);
const rows: { label: string; rs: RunResults[] }[] = labels.map((label, m) => ({
  label,
  rs: Array.from({ length: seeds }, (_, s) => done[s * labels.length + m]!),
}));
const wall = (performance.now() - t0) / 1000;
const vanilla = meanSd(rows[0]!.rs.map((r) => r.testTop1)).m;
const lines = [
  '# Fashion-MNIST: the distillation zoo (RepDistiller layout)',
  '',
  `Command: \`npm run bench:zoo -- ${args.join(' ')}\` — wall time ${(wall / 60).toFixed(1)} min (runs reused from earlier invocations count as 0)${jobs > 1 ? `; ${jobs} runs at a time, so per-run times are of one run sharing the cores` : ''}.`,
  `Teacher ${teacher.model} (${teacher.params} params, ${teacher.testTop1.toFixed(2)}% test top-1, ${teacherRun}); student resnet8;`,
  `${epochs} epochs per run on the full training set without augmentation (initialisation stages as in their configs); seeds 1..${seeds}; test split (10,000 images).`,
  '',
  '| method | test top-1 mean ± sd | Δ vs vanilla | per seed | train time per run |',
  '| --- | ---: | ---: | --- | ---: |',
  `| teacher (${teacher.model}) | ${teacher.testTop1.toFixed(2)} | | | ${teacher.trainSeconds.toFixed(0)} s |`,
  ...rows.map(({ label, rs }) => {
    const { m, sd } = meanSd(rs.map((r) => r.testTop1));
    const delta = label === 'vanilla' ? '' : `${m - vanilla >= 0 ? '+' : ''}${(m - vanilla).toFixed(2)}`;
    const secs = meanSd(rs.map((r) => r.trainSeconds)).m;
    return `| ${label} | ${m.toFixed(2)} ± ${sd.toFixed(2)} | ${delta} | ${rs.map((r) => r.testTop1.toFixed(2)).join(', ')} | ${secs.toFixed(0)} s |`;
  }),
  '',
];
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileAtomic(join(root, 'bench/results/zoo-fashion-mnist.md'), lines.join('\n'));
console.log(lines.join('\n'));
