/**
 * `npm run bench:schemes`: the distillation schemes on the zoo table's pair — teacher ResNet-20
 * (configs/fashion-mnist/baseline/resnet20.yaml, or --teacher), student ResNet-8 — with the zoo's budget and seeds:
 * vanilla, single-teacher KD (from ResNet-20 and from the second teacher, LightNN), Deep Mutual
 * Learning, an online ensemble, BYOT, born-again, teacher-free KD, class-wise self-KD (CS-KD),
 * multi-teacher (confidence weighted, averaged, a random teacher per example), teacher-assistant KD
 * (ResNet-20 -> ResNet-14 -> ResNet-8), adversarial KD, cross-modal KD (the student on 7x7 copies,
 * the teacher on the 28x28 images, beside the same student on labels), and data-free DeepInversion
 * and DAFL. Writes
 * bench/results/schemes-fashion-mnist.md.
 *
 *   npm run bench:schemes -- [--seeds 3] [--epochs 3] [--train-limit 30000] [--runs runs]
 *                            [--rows vanilla,dml,...] [--jobs 2] [--report]
 *                            [--df-seeds 1] [--teacher configs/fashion-mnist/baseline/resnet20.yaml]
 *                            [--out bench/results/schemes-fashion-mnist.md]
 *
 * Every row but the data-free ones trains `--epochs` epochs (per generation for born-again, per
 * link for takd) on the first `--train-limit` training images without augmentation, seeds
 * 1..--seeds. Data-free rows keep their config's synthesis budget and student epochs (they read no
 * training image), over --df-seeds seeds.
 * Finished runs are reused, as bench:zoo does; --report trains nothing.
 */
import 'retort-kd-native';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadExperiment, type RunResults, writeFileAtomic } from 'retort-kd';
import { argOf, finishedRun, meanSd, type RunTask, runMany, runOrReuse } from './lib/runs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const seeds = Number(argOf(args, 'seeds', '3'));
const dfSeeds = Number(argOf(args, 'df-seeds', '1'));
const epochs = Number(argOf(args, 'epochs', '3'));
const runs = argOf(args, 'runs', 'runs');
const jobs = Number(argOf(args, 'jobs', '2'));
const trainLimit = Number(argOf(args, 'train-limit', '30000'));
const report = args.includes('--report');
const cfg = (p: string) => join(root, 'configs/fashion-mnist', p);
const outFile = resolve(root, argOf(args, 'out', 'bench/results/schemes-fashion-mnist.md'));
/**
 * The ResNet-20 teacher's config: the zoo's (30 epochs with augmentation, about 65 min on 2 cores)
 * by default, or another file (e.g. configs/fashion-mnist/demo/teacher.yaml, 3 epochs) when that
 * budget is not at hand; the rows' teacher runs are pointed at it.
 */
const teacherFile = resolve(root, argOf(args, 'teacher', 'configs/fashion-mnist/baseline/resnet20.yaml'));
const teacherName = loadExperiment(teacherFile).name;
const TEACHER_SETS: Record<string, string[]> = {
  'kd (resnet20)': [`teacher.run=${teacherName}`],
  'multi-teacher (ce)': [`scheme.teachers[0].run=${teacherName}`],
  'multi-teacher (average)': [`scheme.teachers[0].run=${teacherName}`],
  'multi-teacher (ce, tau 0.1)': [`scheme.teachers[0].run=${teacherName}`],
  'multi-teacher (random)': [`scheme.teachers[0].run=${teacherName}`],
  takd: [`teacher.run=${teacherName}`],
  adversarial: [`teacher.run=${teacherName}`],
  'data-free': [`teacher.run=${teacherName}`],
  dafl: [`teacher.run=${teacherName}`],
  'cross-modal (kd)': [`teacher.run=${teacherName}`],
};

interface Row {
  label: string;
  file: string;
  /** Extra overrides. */
  sets?: string[];
  /** Keeps the config's own budget (data-free). */
  ownBudget?: boolean;
  what: string;
}
const ROWS: Row[] = [
  { label: 'vanilla', file: cfg('baseline/resnet8.yaml'), what: 'ResNet-8 on the labels' },
  { label: 'kd (resnet20)', file: cfg('kd/resnet8-from-resnet20.yaml'), what: 'offline KD from ResNet-20' },
  {
    label: 'kd (lightnn)',
    file: cfg('kd/resnet8-from-resnet20.yaml'),
    sets: ['teacher.model.name=lightnn', 'teacher.run=fmnist-lightnn'],
    what: 'offline KD from LightNN',
  },
  { label: 'dml', file: cfg('dml/resnet8-peers.yaml'), what: 'two ResNet-8 peers (row: peer 1)' },
  {
    label: 'online ensemble',
    file: cfg('dml/resnet8-ensemble.yaml'),
    what: 'three peers, mean-logit teacher',
  },
  { label: 'byot', file: cfg('byot/resnet8.yaml'), what: 'deepest classifier (row) and two heads' },
  { label: 'born-again', file: cfg('born-again/resnet8.yaml'), what: 'generation 2 (row) from generation 1' },
  {
    label: 'born-again (kd only)',
    file: cfg('born-again/resnet8-kd-only.yaml'),
    what: 'generation 2 on KD at T 1 alone (the paper)',
  },
  { label: 'tf-kd', file: cfg('tf-kd/resnet8.yaml'), what: 'virtual teacher, no network' },
  { label: 'cs-kd', file: cfg('cs-kd/resnet8.yaml'), what: 'own prediction on a same-class image' },
  {
    label: 'multi-teacher (ce)',
    file: cfg('multi-teacher/resnet8-from-resnet20-lightnn.yaml'),
    what: 'ResNet-20 + LightNN, weighted per example',
  },
  {
    label: 'multi-teacher (ce, tau 0.1)',
    file: cfg('multi-teacher/resnet8-from-resnet20-lightnn-sharp.yaml'),
    what: 'as (ce), the weighting sharpened',
  },
  {
    label: 'multi-teacher (average)',
    file: cfg('multi-teacher/resnet8-from-resnet20-lightnn-average.yaml'),
    what: 'ResNet-20 + LightNN, averaged',
  },
  {
    label: 'multi-teacher (random)',
    file: cfg('multi-teacher/resnet8-from-resnet20-lightnn-random.yaml'),
    what: 'ResNet-20 or LightNN, drawn per example',
  },
  {
    label: 'takd',
    file: cfg('takd/resnet8-from-resnet20-via-resnet14.yaml'),
    what: 'ResNet-20 -> ResNet-14 -> ResNet-8',
  },
  { label: 'adversarial', file: cfg('adversarial/resnet8-from-resnet20.yaml'), what: 'KD + discriminator' },
  {
    label: 'cross-modal (labels)',
    file: cfg('cross-modal/resnet8-7x7-labels.yaml'),
    what: 'ResNet-8 on 7x7 copies, labels only',
  },
  {
    label: 'cross-modal (kd)',
    file: cfg('cross-modal/resnet8-7x7-kd.yaml'),
    what: 'ResNet-8 on 7x7 copies, KD from ResNet-20 on 28x28',
  },
  {
    label: 'data-free',
    file: cfg('data-free/resnet8-from-resnet20-deepinversion.yaml'),
    ownBudget: true,
    what: 'DeepInversion, zero real training images',
  },
  {
    label: 'dafl',
    file: cfg('dafl/resnet8-from-resnet20-generator.yaml'),
    ownBudget: true,
    what: 'DAFL generator, zero real training images',
  },
];
const wanted = argOf(args, 'rows', '');
const rows = wanted ? ROWS.filter((r) => wanted.split(',').includes(r.label.split(' ')[0]!)) : ROWS;
const t0 = performance.now();
const budgetTag = `e${epochs}${trainLimit > 0 ? `-n${trainLimit}` : ''}`;

// The teachers first (reused when finished), in this process, when a row needs them.
const teacherFree = new Set([
  'vanilla',
  'dml',
  'online ensemble',
  'byot',
  'born-again',
  'born-again (kd only)',
  'tf-kd',
  'cs-kd',
  'cross-modal (labels)',
]);
const teachers =
  report || rows.every((r) => teacherFree.has(r.label))
    ? [teacherFile, cfg('baseline/lightnn.yaml')].map((f) => finishedRun(runs, loadExperiment(f)))
    : [await runOrReuse(teacherFile, [], runs), await runOrReuse(cfg('baseline/lightnn.yaml'), [], runs)];

const tasks: RunTask[] = [];
const index: { row: number; seed: number }[] = [];
for (let s = 1; s <= Math.max(seeds, dfSeeds); s++)
  for (const [ri, row] of rows.entries()) {
    if (row.ownBudget ? s > dfSeeds : s > seeds) continue;
    const rowSets = [...(row.sets ?? []), ...(TEACHER_SETS[row.label] ?? [])];
    const base = loadExperiment(row.file, rowSets);
    const budget = row.ownBudget
      ? []
      : [`epochs=${epochs}`, ...(trainLimit > 0 ? [`data.trainLimit=${trainLimit}`] : [])];
    const tag = row.ownBudget ? 'own' : budgetTag;
    // The teacher is part of a run's name when it is not the zoo's.
    const t = TEACHER_SETS[row.label] && teacherName !== 'fmnist-resnet20' ? `-t${teacherName}` : '';
    const name = `schemes-${base.name}${row.sets ? '-lightnn' : ''}${t}-${tag}-s${s}`;
    tasks.push({ file: row.file, sets: [...rowSets, ...budget, `seed=${s}`, `name=${name}`] });
    index.push({ row: ri, seed: s });
  }
const done: (RunResults | null)[] = report
  ? tasks.map((t) => finishedRun(runs, loadExperiment(t.file, t.sets)))
  : await runMany(tasks, runs, jobs);
const wall = (performance.now() - t0) / 1000;

const bySeed = (ri: number) => {
  const out = new Map<number, RunResults>();
  index.forEach((x, i) => {
    if (x.row === ri && done[i]) out.set(x.seed, done[i]!);
  });
  return out;
};
const vanilla = bySeed(rows.findIndex((r) => r.label === 'vanilla'));
const f2 = (v: number) => v.toFixed(2);
const ms = (xs: number[]) => {
  if (xs.length === 0) return '–';
  const { m, sd } = meanSd(xs);
  return xs.length > 1 ? `${f2(m)} ± ${f2(sd)}` : f2(m);
};
/** What a scheme adds to results.json, as a short text (peers, heads, generations, synthesis). */
function extraOf(rs: RunResults[]): string {
  if (rs.length === 0) return '';
  const first = rs[0]!;
  const parts: string[] = [];
  if (first['peers']) {
    const peerMeans = rs.map((r) => {
      const ps = r['peers'] as { testTop1: number }[];
      return (r.testTop1 + ps.reduce((a, p) => a + p.testTop1, 0)) / (ps.length + 1);
    });
    parts.push(`mean over peers ${ms(peerMeans)}`);
  }
  if (first['heads']) {
    const n = (first['heads'] as unknown[]).length;
    for (let h = 0; h < n; h++)
      parts.push(`head${h + 1} ${ms(rs.map((r) => (r['heads'] as { testTop1: number }[])[h]!.testTop1))}`);
  }
  if (first['generations'])
    parts.push(`gen1 ${ms(rs.map((r) => (r['generations'] as { testTop1: number }[])[0]!.testTop1))}`);
  if (first['ensembleTop1'] !== undefined)
    parts.push(`ensemble ${ms(rs.map((r) => r['ensembleTop1'] as number))}`);
  if (first['synthetic']) {
    const s = first['synthetic'] as {
      images: number;
      seconds: number;
      teacherAgreement?: number;
      generatorSteps?: number;
    };
    const how =
      s.teacherAgreement !== undefined
        ? ` (teacher agrees on ${s.teacherAgreement.toFixed(1)}%)`
        : s.generatorSteps !== undefined
          ? ` (generator trained ${s.generatorSteps} steps)`
          : '';
    parts.push(`${s.images} images synthesized in ${s.seconds.toFixed(0)} s${how}, 0 real`);
  }
  if (first['assistants'])
    parts.push(
      (first['assistants'] as { label: string; model: string }[])
        .map(
          (a, i) =>
            `${a.label} ${a.model} ${ms(rs.map((r) => (r['assistants'] as { testTop1: number }[])[i]!.testTop1))}`,
        )
        .join(', '),
    );
  if (first['teachers'])
    parts.push(
      `teachers ${(first['teachers'] as { source: string; testTop1: number }[]).map((t) => `${t.source} ${f2(t.testTop1)}`).join(', ')}`,
    );
  return parts.join('; ');
}

const table = rows.map((row, ri) => {
  const got = bySeed(ri);
  const rs = [...got.values()];
  if (rs.length === 0) return `| ${row.label} | not run | | 0 | | | ${row.what} |`;
  const pairs = [...got].flatMap(([s, r]) => (vanilla.has(s) ? [r.testTop1 - vanilla.get(s)!.testTop1] : []));
  const d = pairs.length > 0 && row.label !== 'vanilla' ? meanSd(pairs).m : Number.NaN;
  const delta = Number.isNaN(d) ? '' : `${d >= 0 ? '+' : ''}${f2(d)}`;
  const per = [...got.keys()]
    .sort()
    .map((s) => f2(got.get(s)!.testTop1))
    .join(', ');
  const secs = meanSd(rs.map((r) => r.trainSeconds)).m;
  return `| ${row.label} | ${ms(rs.map((r) => r.testTop1))} | ${delta} | ${rs.length} | ${per} | ${extraOf(rs)} | ${secs.toFixed(0)} s |`;
});
const [t20, tlight] = teachers;
const lines = [
  '# Fashion-MNIST: distillation schemes',
  '',
  report
    ? `Command: \`npm run bench:schemes -- ${args.join(' ')}\` — the table of the runs finished under ${runs}; their training took ${(done.reduce((a, r) => a + (r ? r.trainSeconds : 0), 0) / 3600).toFixed(1)} h of run time in all.`
    : `Command: \`npm run bench:schemes -- ${args.join(' ')}\` — wall time ${(wall / 60).toFixed(1)} min (finished runs reused count as 0)${jobs > 1 ? `; ${jobs} runs at a time sharing the 2 cores` : ''}.`,
  `Teachers: ResNet-20 from ${teacherFile.slice(root.length + 1)} (${t20 ? `${f2(t20.testTop1)}%, ${t20.params} params` : 'not trained'}), LightNN from configs/fashion-mnist/baseline/lightnn.yaml (${tlight ? `${f2(tlight.testTop1)}%, ${tlight.params} params` : 'not trained'}); student ResNet-8 in every row.`,
  `Budget: ${epochs} epochs per run (per generation for born-again, per link for takd) on ${trainLimit > 0 ? `the first ${trainLimit} training images` : 'all 60,000 training images'}, no augmentation, seeds 1..${seeds}; the data-free rows (data-free, dafl) keep their config's budget (seeds 1..${dfSeeds}). The cross-modal rows' student sees 7x7 copies of the images (their Δ compares with vanilla on 28x28). Test split: 10,000 images.`,
  '"Δ vs vanilla" is paired by seed. Times are per run, with runs sharing the cores.',
  '',
  '| scheme | test top-1 mean ± sd | Δ vs vanilla | seeds | per seed | more | train time per run |',
  '| --- | ---: | ---: | ---: | --- | --- | ---: |',
  ...table,
  '',
];
mkdirSync(dirname(outFile), { recursive: true });
writeFileAtomic(outFile, lines.join('\n'));
console.log(lines.join('\n'));
