/**
 * `retort demo`: on Fashion-MNIST, trains (or reuses) a teacher, then the same small student twice —
 * on labels only and with KD from the teacher — and prints params, test accuracy and training time
 * for each. The three experiments are the files in configs/fashion-mnist/demo/.
 */
import 'retort-kd-native';
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
    help: 'folder with teacher.yaml, student-ce.yaml, student-kd.yaml',
    default: join(repoRoot, 'configs/fashion-mnist/demo'),
  },
  { name: 'runs', kind: 'string', help: 'folder for the run folders', default: 'runs' },
  {
    name: 'set',
    kind: 'list',
    help: 'override a key in all three experiments, e.g. --set data.trainLimit=5000',
  },
  { name: 'retrain-teacher', kind: 'flag', help: 'train the teacher again even when a finished one exists' },
  { name: 'help', kind: 'flag', help: 'show this help' },
];

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
    const teacherExp = load('teacher.yaml');
    const ceExp = load('student-ce.yaml');
    const kdExp = load('student-kd.yaml');
    if (kdExp.teacher) kdExp.teacher.run = join(runs, teacherExp.name);
    const rows: { role: string; r: RunResults; reused: boolean }[] = [];
    let teacher = o['retrain-teacher'] === true ? null : finishedRun(runs, teacherExp);
    const reused = teacher !== null;
    if (teacher) console.error(`demo: reusing the finished teacher in ${join(runs, teacherExp.name)}`);
    else
      teacher = await runExperiment(teacherExp, join(dir, 'teacher.yaml'), { runsRoot: runs, force: true });
    rows.push({ role: 'teacher', r: teacher, reused });
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
      const epochs = r.stages.reduce((a, s) => a + s.epochs, 0);
      console.log(
        `| ${role} | ${r.model} | ${r.params.toLocaleString('en-US')} | ${epochs} | ${r.testTop1.toFixed(2)}% | ${re ? 'reused' : `${r.trainSeconds.toFixed(0)} s`} |`,
      );
    }
    const gain = rows[2]!.r.testTop1 - rows[1]!.r.testTop1;
    console.log(
      `\nKD ${gain >= 0 ? 'gained' : 'lost'} ${Math.abs(gain).toFixed(2)} points over the label-only student (same seed, same epochs).`,
    );
  },
};
