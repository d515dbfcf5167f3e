/**
 * The tutorial's three distillation rows (KD, cosine, regressor) over several seeds, with **one
 * teacher shared by both sides**: Retort's DeepNN of bench:tutorial (seed 42) is written to disk and
 * loaded by the PyTorch script, so the two sides distil from the same function and differ only in
 * the student's training. In bench:tutorial each side distils from its own teacher, and the two
 * teachers differ by more than the seed spread of one; this separates the distillation from that.
 *
 *   npm run bench:tutorial-shared-teacher -- [--seeds 42,1,2,3,4] [--rows kd,cosine,regressor]
 *       [--epochs 10] [--train-limit 10000] [--runs runs] [--report] [--same-init]
 *       [--out bench/results/tutorial-fashion-mnist-shared-teacher.md]
 *
 * --same-init also gives each PyTorch student Retort's initial weights of the same row and seed (the
 * run's init.ckpt): the two sides then differ only in the training's random draws (shuffling,
 * dropout); its results go to a file of their own (default ...-same-init.md).
 *
 * PyTorch (bench/tutorial_torch.py --teacher-weights --cache-teacher, Debian's python3-torch, 2
 * threads) computes the frozen teacher's outputs once per training image instead of on every batch:
 * the same function (no augmentation, eval mode; equal up to float rounding), 10x less time. Its lines go to
 * bench/results/tutorial-fashion-mnist-shared-teacher-torch.jsonl (beside --out); --report reads them and trains
 * nothing. The PyTorch side also scores the loaded teacher, a check that the weights crossed over
 * intact (it must equal Retort's top-1).
 */
import 'retort-kd-native';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadExperiment, loadModelWeights, loadRun, type RunResults, writeFileAtomic } from 'retort-kd';
import { argOf, finishedRun, meanSd, runOrReuse } from './lib/runs.js';
import { writeWeights } from './lib/weights.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const epochs = Number(argOf(args, 'epochs', '10'));
const trainLimit = Number(argOf(args, 'train-limit', '10000'));
const runs = argOf(args, 'runs', 'runs');
const seeds = argOf(args, 'seeds', '42,1,2,3,4').split(',').map(Number);
const rows = argOf(args, 'rows', 'kd,cosine,regressor').split(',');
const report = args.includes('--report');
const sameInit = args.includes('--same-init');
const outFile = resolve(
  root,
  argOf(args, 'out', `bench/results/tutorial-fashion-mnist-shared-teacher${sameInit ? '-same-init' : ''}.md`),
);
const torchFile = `${outFile.replace(/\.md$/, '')}-torch.jsonl`;
for (const s of seeds)
  if (!Number.isInteger(s)) throw new Error(`--seeds: whole numbers, got '${argOf(args, 'seeds', '')}'`);
const WHAT: Record<string, string> = {
  kd: 'CE 0.75 + KD 0.25 at T 2',
  cosine: 'CE 0.75 + cosine 0.25 on conv features',
  regressor: 'CE 0.75 + regressor MSE 0.25',
};
for (const r of rows) if (!(r in WHAT)) throw new Error(`--rows: kd, cosine or regressor, got '${r}'`);

// The same names as bench:tutorial, so its seed-42 runs are reused; other seeds get `-s<seed>`.
const tag = `e${epochs}${trainLimit > 0 ? `-n${trainLimit}` : ''}`;
const file = (f: string) => join(root, 'configs/tutorial/fashion-mnist', f);
const budget = [`epochs=${epochs}`, ...(trainLimit > 0 ? [`data.trainLimit=${trainLimit}`] : [])];
const teacherSets = [...budget, `name=${loadExperiment(file('teacher.yaml')).name}-${tag}`];
const teacher = report
  ? finishedRun(runs, loadExperiment(file('teacher.yaml'), teacherSets))
  : await runOrReuse(file('teacher.yaml'), teacherSets, runs);
if (!teacher) throw new Error(`--report: the teacher run is not finished under ${runs}`);
const teacherRun = join(runs, teacher.name);

const retort = new Map<string, RunResults | null>();
for (const row of rows)
  for (const seed of seeds) {
    const name = `${loadExperiment(file(`${row}.yaml`)).name}-${tag}${seed === 42 ? '' : `-s${seed}`}`;
    const sets = [...budget, `seed=${seed}`, `name=${name}`, `teacher.run=${teacher.name}`];
    retort.set(
      `${row}/${seed}`,
      report
        ? finishedRun(runs, loadExperiment(file(`${row}.yaml`), sets))
        : await runOrReuse(file(`${row}.yaml`), sets, runs),
    );
  }

interface TorchLine {
  row: string;
  seed: number | null;
  test_top1: number;
  seconds: number;
  teacher_cache_seconds?: number;
  torch: string;
}
if (!report) {
  // The trained teacher in tfjs layouts, one flat file, in the model's weight order.
  const dir = join(root, 'bench/out/shared-teacher');
  mkdirSync(dir, { recursive: true });
  const { model } = await loadRun(teacherRun, 'bench:tutorial-shared-teacher');
  writeWeights(dir, model);
  const initDir = join(dir, 'init');
  if (sameInit)
    for (const row of rows)
      for (const seed of seeds) {
        const run = join(runs, retort.get(`${row}/${seed}`)!.name);
        const student = (await loadRun(run, 'bench:tutorial-shared-teacher')).model;
        loadModelWeights(join(run, 'init.ckpt'), student);
        writeWeights(join(initDir, `${row}-s${seed}`), student);
      }
  const py = spawnSync(
    '/usr/bin/python3',
    [
      join(root, 'bench/tutorial_torch.py'),
      ...['--epochs', String(epochs), '--train-limit', String(trainLimit), '--rows', rows.join(',')],
      ...['--seeds', seeds.join(','), '--teacher-weights', dir, '--cache-teacher', '--out', torchFile],
      ...(sameInit ? ['--student-init', initDir] : []),
    ],
    { stdio: 'inherit', env: { ...process.env, OMP_NUM_THREADS: '2' } },
  );
  if (py.status !== 0) throw new Error(`bench/tutorial_torch.py exited with ${py.status}`);
}
if (!existsSync(torchFile)) throw new Error(`${torchFile} not found: run without --report first`);
const torchLines = readFileSync(torchFile, 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as TorchLine);
const torchTeacher = torchLines.find((l) => l.row === 'teacher');
const torchOf = (row: string, seed: number) => torchLines.find((l) => l.row === row && l.seed === seed);

const f2 = (v: number) => v.toFixed(2);
const sign = (v: number) => `${v >= 0 ? '+' : ''}${f2(v)}`;
const table: string[] = [];
for (const row of rows) {
  const a: number[] = [];
  const b: number[] = [];
  const d: number[] = [];
  const ta: number[] = [];
  const tb: number[] = [];
  const cells = seeds.map((seed) => {
    const r = retort.get(`${row}/${seed}`);
    const t = torchOf(row, seed);
    if (r) {
      a.push(r.testTop1);
      ta.push(r.trainSeconds);
    }
    if (t) {
      b.push(t.test_top1);
      tb.push(t.seconds);
    }
    if (r && t) d.push(r.testTop1 - t.test_top1);
    return `${r ? f2(r.testTop1) : '–'} / ${t ? f2(t.test_top1) : '–'}`;
  });
  const { m: ma, sd: sa } = meanSd(a);
  const { m: mb, sd: sb } = meanSd(b);
  const { m: md, sd } = meanSd(d);
  const se = d.length > 1 ? sd / Math.sqrt(d.length) : Number.NaN;
  const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / Math.max(v.length, 1);
  table.push(
    `| ${row} | ${cells.join(' | ')} | ${f2(ma)} ± ${f2(sa)} | ${f2(mb)} ± ${f2(sb)} | ${sign(md)} (SE ${f2(se)}) | ${mean(ta).toFixed(0)} s / ${mean(tb).toFixed(0)} s |`,
  );
}
const cpu = cpus()[0]?.model ?? 'unknown CPU';
const md = `# The tutorial's distillation rows over seeds, both sides distilling from one teacher${sameInit ? ', from one initialisation' : ''}

Command: \`npm run bench:tutorial-shared-teacher -- --seeds ${seeds.join(',')} --rows ${rows.join(',')} --epochs ${epochs} --train-limit ${trainLimit}\`.
The recipe of bench/results/tutorial-fashion-mnist.md (Adam lr 0.001, constant, batch 128, no
augmentation, ${trainLimit > 0 ? `the first ${trainLimit}` : 'all 60,000'} training images, ${epochs} epochs), but **one teacher for both sides**:
Retort's DeepNN of that table (run ${teacher.name}, test top-1 ${f2(teacher.testTop1)}), loaded into
PyTorch's DeepNN (${torchTeacher ? `which scores it at ${f2(torchTeacher.test_top1)}` : 'not scored'}). ${sameInit ? "**PyTorch's students start from Retort's initial weights** of the same row and seed (each run's init.ckpt), so the sides differ only in shuffling and dropout." : "Students start from each side's own\ninitialisation of the seed."} PyTorch ${torchLines[0]?.torch ?? 'not run'}, 2 threads, teacher outputs computed once
(${torchLines.find((l) => l.teacher_cache_seconds !== undefined)?.teacher_cache_seconds ?? '?'} s), as Retort's cache does. CPU: ${cpu}, 2 cores.

Each cell is Retort / PyTorch test top-1 (%); "Retort − PyTorch" is the mean of the per-seed
differences with its standard error.

| row | ${seeds.map((s) => `seed ${s}`).join(' | ')} | Retort mean ± sd | PyTorch mean ± sd | Retort − PyTorch (pp) | train time (Retort / PyTorch) |
| --- | ${seeds.map(() => '---:').join(' | ')} | ---: | ---: | ---: | ---: |
${table.join('\n')}

Rows: ${rows.map((r) => `${r}: LightNN, ${WHAT[r]}`).join('; ')}.
`;
mkdirSync(dirname(outFile), { recursive: true });
writeFileAtomic(outFile, md);
process.stdout.write(md);
