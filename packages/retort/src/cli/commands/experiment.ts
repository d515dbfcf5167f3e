/** `retort train` and `retort distill`: run an experiment file (the library's runExperiment). */
import { join } from 'node:path';
import { loadExperiment } from '../../config/load.js';
import { assertRunFree } from '../../train/run-dir.js';
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import { type Command, SUMMARIES } from '../command.js';

const options: readonly OptionSpec[] = [
  { name: 'set', kind: 'list', help: 'override a config key, e.g. --set optimizer.lr=0.01 (repeatable)' },
  { name: 'runs', kind: 'string', help: 'folder that holds run folders', default: 'runs' },
  { name: 'resume', kind: 'flag', help: 'continue the run from its last checkpoint' },
  { name: 'force', kind: 'flag', help: 'start over when the run folder exists (the old one is kept aside)' },
  { name: 'help', kind: 'flag', help: 'show this help' },
];

function experimentCommand(name: 'train' | 'distill', needsTeacher: boolean): Command {
  const summary = SUMMARIES[name];
  return {
    name,
    summary,
    async run(argv) {
      const files: string[] = [];
      const o = parseOptions(argv, options, name, files);
      if (o['help'] === true) {
        console.log(
          `usage: retort ${name} <experiment.yaml> [options]\n\n${helpText(name, summary, options)}`,
        );
        return;
      }
      if (files.length !== 1)
        throw new Error(`retort ${name}: give one experiment file (got ${files.length}); see --help`);
      const file = files[0]!;
      const exp = loadExperiment(file, o['set'] as string[]);
      // A scheme decides for itself whether it needs a teacher (dml, byot, born-again make their own).
      if (needsTeacher && !exp.teacher && exp.scheme === undefined)
        throw new Error(
          `retort distill: ${file} has no teacher section and no scheme (use retort train for a baseline)`,
        );
      // Before the compute libraries load (~0.7 s): a run another process is writing fails now.
      if (o['resume'] === true || o['force'] === true) assertRunFree(String(o['runs']), exp.name);
      const { runExperiment } = await import('../../run/experiment.js');
      const r = await runExperiment(exp, file, {
        runsRoot: String(o['runs']),
        force: o['force'] === true,
        resume: o['resume'] === true,
      });
      const { reportRun } = await import('./report.js');
      const report = await reportRun([r.runDir], join(r.runDir, 'report.html'));
      process.stderr.write(`report: ${report}\n`);
      console.log(
        JSON.stringify({
          name: r.name,
          runDir: r.runDir,
          params: r.params,
          testTop1: r.testTop1,
          seconds: r.trainSeconds,
          report,
        }),
      );
    },
  };
}

export const trainCommand = experimentCommand('train', false);
export const distillCommand = experimentCommand('distill', true);
