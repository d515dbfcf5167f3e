/**
 * `npm run bench:tutorial`: the PyTorch knowledge-distillation tutorial's five rows — teacher
 * (DeepNN), student without a teacher (LightNN), KD, cosine loss, regressor — on Fashion-MNIST with
 * the recipe as written (configs/tutorial/fashion-mnist/), Retort beside PyTorch 1.13 running the
 * same recipe on the same data (bench/tutorial_torch.py, 2 threads). Writes
 * bench/results/tutorial-fashion-mnist.md.
 *
 *   npm run bench:tutorial -- [--epochs 10] [--train-limit 0] [--runs runs] [--torch] [--report]
 *                              [--out bench/results/tutorial-fashion-mnist.md]
 *
 * --torch also runs the PyTorch script (long: its DeepNN trains at about a quarter of Retort's
 * speed on this CPU); otherwise its last results (bench/results/tutorial-fashion-mnist-torch.jsonl)
 * are read when they match the epochs and training images. Retort's rows run one after another in
 * this process (the teacher first); finished runs are reused. --report trains nothing.
 */
import 'retort-kd-native';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadExperiment, type RunResults, writeFileAtomic } from 'retort-kd';
import { argOf, finishedRun, runOrReuse } from './lib/runs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const epochs = Number(argOf(args, 'epochs', '10'));
const trainLimit = Number(argOf(args, 'train-limit', '0'));
const runs = argOf(args, 'runs', 'runs');
const report = args.includes('--report');
const outFile = resolve(root, argOf(args, 'out', 'bench/results/tutorial-fashion-mnist.md'));
const torchFile = join(root, 'bench/results/tutorial-fashion-mnist-torch.jsonl');

const ROWS = [
  { row: 'teacher', file: 'teacher.yaml', what: 'DeepNN on CE' },
  { row: 'student', file: 'student.yaml', what: 'LightNN on CE, no teacher' },
  { row: 'kd', file: 'kd.yaml', what: 'LightNN, CE 0.75 + KD 0.25 at T 2' },
  { row: 'cosine', file: 'cosine.yaml', what: 'LightNN, CE 0.75 + cosine 0.25 on conv features' },
  { row: 'regressor', file: 'regressor.yaml', what: 'LightNN, CE 0.75 + regressor MSE 0.25' },
] as const;

const tag = `e${epochs}${trainLimit > 0 ? `-n${trainLimit}` : ''}`;
const budget = (name: string) => [
  `epochs=${epochs}`,
  ...(trainLimit > 0 ? [`data.trainLimit=${trainLimit}`] : []),
  `name=${name}-${tag}`,
];
const file = (f: string) => join(root, 'configs/tutorial/fashion-mnist', f);
const teacherName = `${loadExperiment(file('teacher.yaml')).name}-${tag}`;
const setsOf = (row: string, name: string) => [
  ...budget(name),
  ...(row === 'teacher' || row === 'student' ? [] : [`teacher.run=${teacherName}`]),
];

const results: (RunResults | null)[] = [];
for (const r of ROWS) {
  const exp = loadExperiment(file(r.file));
  const sets = setsOf(r.row, exp.name);
  results.push(
    report
      ? finishedRun(runs, loadExperiment(file(r.file), sets))
      : await runOrReuse(file(r.file), sets, runs),
  );
}

interface TorchRow {
  row: string;
  test_top1: number;
  seconds: number;
  epochs: number;
  train_images: number;
  threads: number;
  torch: string;
}
if (args.includes('--torch') && !report) {
  const py = spawnSync(
    '/usr/bin/python3',
    [
      join(root, 'bench/tutorial_torch.py'),
      '--epochs',
      String(epochs),
      '--train-limit',
      String(trainLimit),
      '--out',
      torchFile,
    ],
    { stdio: 'inherit', env: { ...process.env, OMP_NUM_THREADS: '2' } },
  );
  if (py.status !== 0) throw new Error(`bench/tutorial_torch.py exited with ${py.status}`);
}
const wantImages = trainLimit > 0 ? trainLimit : 60000;
const torchRows = new Map<string, TorchRow>(
  existsSync(torchFile)
    ? readFileSync(torchFile, 'utf8')
        .trim()
        .split('\n')
        .filter((l) => l)
        .map((l) => JSON.parse(l) as TorchRow)
        .filter((t) => t.epochs === epochs && t.train_images === wantImages)
        .map((t) => [t.row, t])
    : [],
);

const f2 = (v: number) => v.toFixed(2);
const lines = ROWS.map((r, i) => {
  const got = results[i];
  const t = torchRows.get(r.row);
  const d = got && t ? got.testTop1 - t.test_top1 : Number.NaN;
  const ratio = got && t ? t.seconds / got.trainSeconds : Number.NaN;
  return `| ${r.row} | ${got ? f2(got.testTop1) : 'not run'} | ${t ? f2(t.test_top1) : 'not run'} | ${Number.isNaN(d) ? '' : `${d >= 0 ? '+' : ''}${f2(d)}`} | ${got ? `${got.trainSeconds.toFixed(0)} s` : ''} | ${t ? `${t.seconds.toFixed(0)} s` : ''} | ${Number.isNaN(ratio) ? '' : `${ratio.toFixed(2)}x`} | ${r.what} |`;
});
const cpu = cpus()[0]?.model ?? 'unknown CPU';
const torchVersion = [...torchRows.values()][0]?.torch ?? 'not run';
const md = `# The PyTorch KD tutorial's recipe on Fashion-MNIST: Retort beside PyTorch

Command: \`npm run bench:tutorial -- --epochs ${epochs}${trainLimit > 0 ? ` --train-limit ${trainLimit}` : ''} --torch\`.
Recipe (configs/tutorial/fashion-mnist/, bench/tutorial_torch.py): Adam lr 0.001, no weight decay,
constant rate, ${epochs} epochs, batch 128, shuffled, no augmentation, inputs (p - 0.2860) / 0.3530;
${trainLimit > 0 ? `the first ${trainLimit}` : 'all 60,000'} training images; test split 10,000 images; seed 42 on both sides
(different random streams: the runs are not bit-identical, only the recipe is).
PyTorch ${torchVersion}, 2 threads. CPU: ${cpu}, 2 cores. Retort rows ran one at a time; "speed-up" is
PyTorch's training time over Retort's (trainSeconds: the epochs, teacher outputs included where a row has one).

| row | Retort top-1 | PyTorch top-1 | Retort − PyTorch (pp) | Retort time | PyTorch time | speed-up | what |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |
${lines.join('\n')}
`;
mkdirSync(dirname(outFile), { recursive: true });
writeFileAtomic(outFile, md);
process.stdout.write(md);
