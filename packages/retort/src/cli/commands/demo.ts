/**
 * `retort demo`: on Fashion-MNIST, the same small student twice — on labels only and with KD from a
 * ResNet-20 teacher — and a table of params, test accuracy and training time. The teacher is the one
 * shipped in models/fashion-mnist-resnet20/ (its SHA-256 is checked first), so the demo trains only
 * the two students; `--train-teacher` trains it again from its recorded config (reusing a finished
 * run of that config) and distils from that instead. The students are the files in
 * configs/fashion-mnist/demo/.
 */
import 'retort-kd-native';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Experiment } from '../../config/experiment.js';
import { loadExperiment } from '../../config/load.js';
import { type RunResults, runExperiment } from '../../run/experiment.js';
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import { type Command, SUMMARIES } from '../command.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', '..');

const options: readonly OptionSpec[] = [
  {
    name: 'configs',
    kind: 'string',
    help: 'folder with student-ce.yaml and student-kd.yaml',
    default: join(repoRoot, 'configs/fashion-mnist/demo'),
  },
  { name: 'runs', kind: 'string', help: 'folder for the run folders', default: 'runs' },
  {
    name: 'set',
    kind: 'list',
    help: 'override a key in both students (and a trained teacher), e.g. --set data.trainLimit=5000',
  },
  {
    name: 'teacher',
    kind: 'string',
    help: 'the shipped teacher folder (model.ckpt, teacher.json)',
    default: join(repoRoot, 'models/fashion-mnist-resnet20'),
  },
  {
    name: 'train-teacher',
    kind: 'flag',
    help: 'train the teacher from its recorded config instead of using the shipped weights (the baseline recipe: 30 epochs, about 35-65 min on 2 cores)',
  },
  { name: 'help', kind: 'flag', help: 'show this help' },
];

/** What models/<name>/teacher.json records about a shipped teacher. */
export interface ShippedTeacher {
  name: string;
  model: string;
  params: number;
  config: string;
  seed: number;
  testTop1: number;
  sha256: string;
}

/**
 * The shipped teacher's record, after checking its weights against the recorded SHA-256 (a
 * truncated or edited file, or a Git LFS pointer, is refused by name instead of distilled from).
 */
export function shippedTeacher(dir: string): ShippedTeacher & { checkpoint: string } {
  const record = join(dir, 'teacher.json');
  const checkpoint = join(dir, 'model.ckpt');
  if (!existsSync(record) || !existsSync(checkpoint))
    throw new Error(
      `demo: no shipped teacher in ${dir} (expected teacher.json and model.ckpt; --train-teacher trains one)`,
    );
  const t = JSON.parse(readFileSync(record, 'utf8')) as ShippedTeacher;
  const sha = createHash('sha256').update(readFileSync(checkpoint)).digest('hex');
  if (sha !== t.sha256)
    throw new Error(
      `demo: ${checkpoint} has SHA-256 ${sha}, ${record} records ${t.sha256}: the file is not the shipped teacher (restore it with git, or pass --train-teacher)`,
    );
  return { ...t, checkpoint };
}

/** A finished run of the same experiment (same resolved config) can be reused as it is. */
function finishedRun(runs: string, exp: Experiment): RunResults | null {
  const dir = join(runs, exp.name);
  const cfg = join(dir, 'config.json');
  const res = join(dir, 'results.json');
  if (!existsSync(cfg) || !existsSync(res) || !existsSync(join(dir, 'model.ckpt'))) return null;
  if (readFileSync(cfg, 'utf8') !== `${JSON.stringify(exp, null, 2)}\n`) return null;
  return JSON.parse(readFileSync(res, 'utf8')) as RunResults;
}

export const demoCommand: Command = {
  name: 'demo',
  summary: SUMMARIES.demo,
  async run(argv) {
    const o = parseOptions(argv, options, 'demo');
    if (o['help'] === true) {
      console.log(helpText('demo', this.summary, options));
      return;
    }
    const dir = String(o['configs']);
    const runs = String(o['runs']);
    const sets = o['set'] as string[];
    const load = (f: string) => loadExperiment(join(dir, f), sets);
    const ceExp = load('student-ce.yaml');
    const kdExp = load('student-kd.yaml');
    const shipped = shippedTeacher(String(o['teacher']));
    const rows: { role: string; r: RunResults | null; reused: boolean }[] = [];
    let teacherTop1 = shipped.testTop1;
    if (kdExp.teacher === undefined) throw new Error(`demo: ${join(dir, 'student-kd.yaml')} has no teacher`);
    if (o['train-teacher'] === true) {
      const file = resolve(repoRoot, shipped.config);
      const teacherExp = loadExperiment(file, sets);
      let teacher = finishedRun(runs, teacherExp);
      const reused = teacher !== null;
      if (teacher) console.error(`demo: reusing the finished teacher in ${join(runs, teacherExp.name)}`);
      else teacher = await runExperiment(teacherExp, file, { runsRoot: runs, force: true });
      rows.push({ role: 'teacher', r: teacher, reused });
      teacherTop1 = teacher.testTop1;
      delete kdExp.teacher.checkpoint;
      kdExp.teacher.run = join(runs, teacherExp.name);
    } else {
      console.error(
        `demo: teacher ${shipped.model} shipped in ${String(o['teacher'])} (${shipped.testTop1.toFixed(2)}% test top-1, SHA-256 checked)`,
      );
      delete kdExp.teacher.run;
      kdExp.teacher.checkpoint = shipped.checkpoint;
      rows.push({ role: 'teacher (shipped)', r: null, reused: true });
    }
    rows.push({
      role: 'student, labels only',
      r: await runExperiment(ceExp, 'student-ce.yaml', { runsRoot: runs, force: true }),
      reused: false,
    });
    rows.push({
      role: 'student, KD',
      r: await runExperiment(kdExp, 'student-kd.yaml', { runsRoot: runs, force: true }),
      reused: false,
    });
    console.log('');
    console.log('| run | model | params | epochs | test top-1 | training time |');
    console.log('| --- | --- | ---: | ---: | ---: | ---: |');
    for (const { role, r, reused: re } of rows) {
      if (r === null) {
        console.log(
          `| ${role} | ${shipped.model} | ${shipped.params.toLocaleString('en-US')} | | ${teacherTop1.toFixed(2)}% | shipped |`,
        );
        continue;
      }
      const epochs = r.stages.reduce((a, s) => a + s.epochs, 0);
      console.log(
        `| ${role} | ${r.model} | ${r.params.toLocaleString('en-US')} | ${epochs} | ${r.testTop1.toFixed(2)}% | ${re ? 'reused' : `${r.trainSeconds.toFixed(0)} s`} |`,
      );
    }
    const gain = rows[2]!.r!.testTop1 - rows[1]!.r!.testTop1;
    console.log(
      `\nKD ${gain >= 0 ? 'gained' : 'lost'} ${Math.abs(gain).toFixed(2)} points over the label-only student (same seed, same epochs).`,
    );
    const { reportRun } = await import('./report.js');
    const report = await reportRun(
      rows.flatMap((r) => (r.r && !r.reused ? [r.r.runDir] : [])),
      join(runs, 'demo-report.html'),
      'the demo: a ResNet-8 student on labels only and with KD',
    );
    console.log(`report: ${report}`);
  },
};
