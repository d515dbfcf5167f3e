/**
 * `npm run bench:zoo`: every distillation method of configs/fashion-mnist/<method>/ on the same
 * teacher (ResNet-20, trained by configs/fashion-mnist/baseline/resnet20.yaml, reused when finished)
 * and the same student (ResNet-8), the same budget and seeds, in the layout of RepDistiller's README
 * table: teacher, vanilla student, one row per method, mean ± sd over seeds, and the gain over vanilla.
 * Writes bench/results/zoo-fashion-mnist.md.
 *
 *   npm run bench:zoo -- [--seeds 3] [--epochs 3] [--train-limit 30000] [--runs runs]
 *                        [--methods kd,crd,at,...] [--jobs 1] [--report] [--out bench/results/zoo-fashion-mnist.md]
 *
 * --jobs N trains N runs at once through the sweep's local runner (what `retort sweep --local N`
 * runs: worker processes with the cores split between them, the teacher cache made first by N shard
 * jobs; configs/fashion-mnist/sweeps/zoo.yaml is the same grid as a sweep file). --report trains
 * nothing: it writes the table from the runs already finished (a row lists the seeds it has).
 * "Δ vs vanilla" is paired: the mean over a row's seeds of (method − vanilla of the same seed).
 *
 * Budget: every run is `--epochs` epochs (default 3) of the first `--train-limit` training images
 * (default 30,000 of 60,000; 0 means all), no augmentation. Initialisation stages (FitNet's hint
 * stage, AB, FSP, FT's paraphraser) keep their own epochs from the config, on the same images; only
 * the last stage gets `--epochs`. Why 30,000: the whole table — 3 seeds x (vanilla + 17 configs) —
 * took 7.5 h of run time on all 60,000 (about 4 h of wall time with --jobs 2 on 2 cores); half the
 * images brought it to 88.8 min of wall time (--jobs 2, 54 runs, teacher reused).
 * bench/results/zoo-fashion-mnist-60k.md keeps the full-set table.
 */
import 'retort-kd-native';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Experiment, loadExperiment, type RunResults, writeFileAtomic } from 'retort-kd';
import { argOf, finishedRun, meanSd, type RunTask, runMany, runOrReuse } from './lib/runs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const seeds = Number(argOf(args, 'seeds', '3'));
const epochs = Number(argOf(args, 'epochs', '3'));
const runs = argOf(args, 'runs', 'runs');
const jobs = Number(argOf(args, 'jobs', '1'));
const trainLimit = Number(argOf(args, 'train-limit', '30000'));
if (!Number.isInteger(trainLimit) || trainLimit < 0)
  throw new Error(
    `bench:zoo: --train-limit must be a whole number ≥ 0 (0: all images), got ${argOf(args, 'train-limit', '')}`,
  );
const report = args.includes('--report');
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
/**
 * Overrides that put a config on the table's budget: the run, and its last stage when it has stages,
 * get `epochs`. Both are set so that the resolved config equals configs/fashion-mnist/sweeps/zoo.yaml's
 * (its grid sets `epochs`, each staged method its last stage's), and the two share finished runs.
 */
function budget(exp: Experiment): string[] {
  const last = exp.stages ? [`stages[${exp.stages.length - 1}].epochs=${epochs}`] : [];
  return [
    ...(trainLimit > 0 ? [`data.trainLimit=${trainLimit}`] : []),
    ...noAug,
    `epochs=${epochs}`,
    ...last,
  ];
}
/**
 * Run names as zoo.yaml's sweep names them: zoo-e<epochs>[-n<limit>]-<label>-s<seed>. (The
 * full-set table, zoo-fashion-mnist-60k.md, was made under the earlier zoo-<config name>-e3-sN names.)
 */
const budgetTag = `e${epochs}${trainLimit > 0 ? `-n${trainLimit}` : ''}`;
const outFile = resolve(root, argOf(args, 'out', 'bench/results/zoo-fashion-mnist.md'));

const t0 = performance.now();
const teacherFile = join(cfgDir, 'baseline/resnet20.yaml');
const teacher = report
  ? (finishedRun(runs, loadExperiment(teacherFile)) ??
    (() => {
      throw new Error(`bench:zoo --report: the teacher run of ${teacherFile} has not finished under ${runs}`);
    })())
  : await runOrReuse(teacherFile, [], runs);
const teacherRun = join(runs, teacher.name);
const labels = ['vanilla', ...methods];
const tasks: RunTask[] = [];
// Seed-major order: with several jobs, every method has its first seed early.
for (let s = 1; s <= seeds; s++)
  for (const method of labels) {
    const file = method === 'vanilla' ? join(cfgDir, 'baseline/resnet8.yaml') : join(cfgDir, method, PAIR);
    const base = loadExperiment(file);
    const sets = [...budget(base), `seed=${s}`, `name=zoo-${budgetTag}-${method}-s${s}`];
    // A bare run name, resolved under the run store (as the sweep file writes it).
    if (base.teacher) sets.push(`teacher.run=${teacher.name}`);
    tasks.push({ file, sets });
  }
const done: (RunResults | null)[] = report
  ? tasks.map((t) => finishedRun(runs, loadExperiment(t.file, t.sets)))
  : await runMany(tasks, runs, jobs);
/** Per row, the finished runs by seed (null: not run). */
const rows = labels.map((label, m) => ({
  label,
  bySeed: Array.from({ length: seeds }, (_, s) => done[s * labels.length + m] ?? null),
}));
const wall = (performance.now() - t0) / 1000;
const vanillaBySeed = rows[0]!.bySeed;
const vanilla = meanSd(vanillaBySeed.filter((r) => r !== null).map((r) => r.testTop1)).m;
const computeSeconds = done.reduce((a, r) => a + (r ? r.trainSeconds : 0), 0);
const lines = [
  '# Fashion-MNIST: the distillation zoo (RepDistiller layout)',
  '',
  report
    ? `Command: \`npm run bench:zoo -- ${args.join(' ')}\` — the table of the runs finished under ${runs}; their training took ${(computeSeconds / 3600).toFixed(1)} h of run time in all (runs shared the 2 cores, mostly two at a time).`
    : `Command: \`npm run bench:zoo -- ${args.join(' ')}\` — wall time ${(wall / 60).toFixed(1)} min (runs reused from earlier invocations count as 0)${jobs > 1 ? `; ${jobs} runs at a time, so per-run times are of one run sharing the cores` : ''}.`,
  `Teacher ${teacher.model} (${teacher.params} params, ${teacher.testTop1.toFixed(2)}% test top-1, ${teacherRun}); student resnet8;`,
  `${epochs} epochs per run on ${trainLimit > 0 ? `the first ${trainLimit} training images` : 'the full training set (60,000 images)'} without augmentation (initialisation stages as in their configs); seeds 1..${seeds}; test split (10,000 images).`,
  '',
  '| method | test top-1 mean ± sd | Δ vs vanilla (paired) | seeds | per seed | train time per run |',
  '| --- | ---: | ---: | ---: | --- | ---: |',
  `| teacher (${teacher.model}) | ${teacher.testTop1.toFixed(2)} | | | | ${teacher.trainSeconds.toFixed(0)} s |`,
  ...rows.map(({ label, bySeed }) => {
    const rs = bySeed.filter((r): r is RunResults => r !== null);
    if (rs.length === 0) return `| ${label} | not run | | 0 | | |`;
    const { m, sd } = meanSd(rs.map((r) => r.testTop1));
    const pairs = bySeed.flatMap((r, s) =>
      r && vanillaBySeed[s] ? [r.testTop1 - vanillaBySeed[s]!.testTop1] : [],
    );
    const d = pairs.length > 0 ? meanSd(pairs).m : Number.NaN;
    const delta = label === 'vanilla' || pairs.length === 0 ? '' : `${d >= 0 ? '+' : ''}${d.toFixed(2)}`;
    const secs = meanSd(rs.map((r) => r.trainSeconds)).m;
    const sdText = rs.length > 1 ? ` ± ${sd.toFixed(2)}` : '';
    const per = bySeed.map((r) => (r ? r.testTop1.toFixed(2) : '–')).join(', ');
    return `| ${label} | ${m.toFixed(2)}${sdText} | ${delta} | ${rs.length} | ${per} | ${secs.toFixed(0)} s |`;
  }),
  '',
  `Vanilla mean over its seeds: ${vanilla.toFixed(2)}. Per seed, '–' is a seed not run.`,
  '',
];
mkdirSync(dirname(outFile), { recursive: true });
writeFileAtomic(outFile, lines.join('\n'));
console.log(lines.join('\n'));
