/** `retort report <run...>`: one self-contained HTML report (and SVG figures) of run folders. */
import { join } from 'node:path';
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import { type Command, SUMMARIES } from '../command.js';

const options: readonly OptionSpec[] = [
  {
    name: 'out',
    kind: 'string',
    help: 'the HTML file (default: <run>/report.html for one run, report.html for several); figures go to <name>-figures/ beside it',
  },
  { name: 'png', kind: 'flag', help: 'also write each figure as a PNG (twice the size of the SVG)' },
  { name: 'title', kind: 'string', help: 'the page title (default: the run name, or "N runs")' },
  { name: 'help', kind: 'flag', help: 'show this help' },
];

/** Writes `<run>/report.html` for a finished run and returns its path (used by train, distill, demo, compress). */
export async function reportRun(dirs: readonly string[], out: string, title?: string): Promise<string> {
  const { writeReport } = await import('../../report/report.js');
  return (await writeReport(dirs, { out, ...(title ? { title } : {}) })).html;
}

export const reportCommand: Command = {
  name: 'report',
  summary: SUMMARIES.report,
  async run(argv) {
    const dirs: string[] = [];
    const o = parseOptions(argv, options, 'report', dirs);
    if (o['help'] === true || dirs.length === 0) {
      console.log(
        `usage: retort report <run folder>... [options]\n\n${helpText('report', this.summary, options)}`,
      );
      if (dirs.length === 0 && o['help'] !== true)
        throw new Error('retort report: give at least one run folder (or a folder of runs)');
      return;
    }
    const t0 = performance.now();
    const { writeReport } = await import('../../report/report.js');
    const out =
      o['out'] !== undefined
        ? String(o['out'])
        : dirs.length === 1
          ? join(dirs[0]!, 'report.html')
          : 'report.html';
    const r = await writeReport(dirs, {
      out,
      png: o['png'] === true,
      ...(o['title'] !== undefined ? { title: String(o['title']) } : {}),
    });
    console.log(
      JSON.stringify({
        report: r.html,
        runs: r.runs,
        figures: r.figures.length,
        seconds: Number(((performance.now() - t0) / 1000).toFixed(2)),
      }),
    );
  },
};
