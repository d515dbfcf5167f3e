/**
 * `retort report`: one self-contained HTML file for one or more run folders — every figure inline
 * SVG, the style inline, no script, so it opens offline and mails as one file — and each figure also
 * as its own .svg file for papers. Per training run: loss terms, top-1, learning rate and img/s per
 * epoch, the confusion matrix and the teacher-student top-1 agreement; for several runs an overlay
 * and a comparison table; per compression run accuracy against stored size, MACs and latency with
 * the Pareto front marked.
 */
import { mkdirSync } from 'node:fs';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { writeFileAtomic } from '../util/atomic.js';
import { compressFigure, overlayFigure, renderSvg, runFigure, stageBytes, stageTop1 } from './charts.js';
import { type CompressRun, expandRunDirs, type ReportRun, readRun, type TrainRun } from './read.js';

export interface ReportOptions {
  /** The HTML file; its figures go to `<name>-figures/` beside it. */
  out: string;
  /** Also write each figure as a PNG at twice its size (about as long again as the SVGs). */
  png?: boolean;
  /** Shown in the page title (default: the run's name, or "N runs"). */
  title?: string;
}

export interface ReportResult {
  html: string;
  figures: string[];
  runs: number;
}

const esc = (s: string) =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
const pct = (v: number | undefined) => (v === undefined ? '' : `${v.toFixed(2)}%`);
const int = (v: number) => Math.round(v).toLocaleString('en-US');
const secs = (v: number) => (v >= 120 ? `${(v / 60).toFixed(1)} min` : `${v.toFixed(0)} s`);
const slug = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'run';

function table(head: string[], rows: string[][], numeric: boolean[]): string {
  const th = head.map((h, i) => `<th${numeric[i] ? ' class="n"' : ''}>${esc(h)}</th>`).join('');
  const tr = rows
    .map((r) => `<tr>${r.map((c, i) => `<td${numeric[i] ? ' class="n"' : ''}>${esc(c)}</td>`).join('')}</tr>`)
    .join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody></table>`;
}

function trainTable(runs: readonly TrainRun[]): string {
  const head = [
    'run',
    'model',
    'params',
    'teacher',
    'epochs',
    'test top-1',
    'test top-5',
    'agreement with teacher',
    'training time',
    'img/s (mean)',
  ];
  const rows = runs.map((r) => [
    r.name,
    r.model + (r.scheme && r.scheme !== 'offline' ? ` (${r.scheme})` : ''),
    int(r.params),
    r.teacher ? `${r.teacher.model} ${pct(r.teacher.testTop1)}` : '',
    String(r.epochs.length),
    pct(r.testTop1),
    pct(r.testTop5),
    pct(r.teacherAgreement),
    secs(r.trainSeconds),
    r.epochs.length ? int(r.epochs.reduce((a, e) => a + e.imgPerSec, 0) / r.epochs.length) : '',
  ]);
  return table(head, rows, [false, false, true, false, true, true, true, true, true, true]);
}

/**
 * Runs whose names differ only in a trailing seed (`-s1`, `-s2`, ...), as the bench scripts name
 * them, summarised per group: mean ± sd of the test top-1 over the seeds — the zoo's and the schemes'
 * tables when given their runs. Null when no group has two seeds.
 */
export function seedGroups(runs: readonly TrainRun[]): { name: string; top1: number[] }[] | null {
  const groups = new Map<string, number[]>();
  for (const r of runs) {
    const m = /^(.*)-s\d+$/.exec(r.name);
    const key = m ? m[1]! : r.name;
    groups.set(key, [...(groups.get(key) ?? []), r.testTop1]);
  }
  const out = [...groups].map(([name, top1]) => ({ name, top1 }));
  return out.some((g) => g.top1.length > 1) ? out : null;
}

function seedTable(groups: { name: string; top1: number[] }[]): string {
  const rows = groups.map((g) => {
    const mean = g.top1.reduce((a, b) => a + b, 0) / g.top1.length;
    const sd =
      g.top1.length > 1
        ? Math.sqrt(g.top1.reduce((a, b) => a + (b - mean) ** 2, 0) / (g.top1.length - 1))
        : Number.NaN;
    return [
      g.name,
      String(g.top1.length),
      Number.isNaN(sd) ? pct(mean) : `${mean.toFixed(2)} ± ${sd.toFixed(2)}%`,
      g.top1.map((v) => v.toFixed(2)).join(', '),
    ];
  });
  return table(['runs (seed suffix removed)', 'seeds', 'test top-1 mean ± sd', 'per seed'], rows, [
    false,
    true,
    true,
    false,
  ]);
}

function compressTable(run: CompressRun): string {
  const head = [
    'stage',
    'test top-1',
    'params',
    'MACs per image',
    'stored bytes',
    'ONNX latency, batch 1',
    'batch 64',
  ];
  const rows = run.stages.map((s) => [
    s.stage,
    pct(stageTop1(s)),
    int(s.params),
    int(s.macs),
    int(stageBytes(s)),
    s.onnx ? `${s.onnx.latencyB1Ms.toFixed(3)} ms` : '',
    s.onnx ? `${s.onnx.latencyB64Ms.toFixed(2)} ms` : '',
  ]);
  return table(head, rows, [false, true, true, true, true, true, true]);
}

const STYLE = `body{font:14px/1.45 Helvetica,Arial,sans-serif;color:#222;margin:24px auto;max-width:1180px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:3px}
.meta{color:#666;font-size:12px}table{border-collapse:collapse;margin:8px 0 12px;font-size:13px}
th,td{border-bottom:1px solid #e4e4e4;padding:3px 9px;text-align:left}td.n,th.n{text-align:right}
th{background:#f6f6f6}figure{margin:6px 0 14px;overflow-x:auto}figcaption{color:#666;font-size:12px}`;

/**
 * A PNG of an SVG figure at twice its size (resvg, a Rust renderer shipped prebuilt in its npm
 * package; text in the system's sans-serif font, DejaVu Sans on Debian).
 */
export function svgToPng(svg: string): Buffer {
  return new Resvg(svg, {
    fitTo: { mode: 'zoom', value: 2 },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  })
    .render()
    .asPng();
}

/** Writes the report of `dirs` (run folders or folders of them) and its figures; returns where. */
export async function writeReport(dirs: readonly string[], opts: ReportOptions): Promise<ReportResult> {
  const runs: ReportRun[] = expandRunDirs(dirs).map(readRun);
  const out = resolve(opts.out);
  const figDir = join(dirname(out), `${basename(out, extname(out))}-figures`);
  mkdirSync(figDir, { recursive: true });
  const figures: string[] = [];
  const figure = async (name: string, spec: Parameters<typeof renderSvg>[0], caption: string) => {
    const svg = await renderSvg(spec);
    const file = join(figDir, `${slug(name)}.svg`);
    writeFileAtomic(file, svg);
    figures.push(file);
    const link = (f: string, what: string) => `<a href="${esc(relative(dirname(out), f))}">${what}</a>`;
    const links = [link(file, 'SVG')];
    if (opts.png) {
      const png = file.replace(/\.svg$/, '.png');
      writeFileAtomic(png, svgToPng(svg));
      figures.push(png);
      links.push(link(png, 'PNG'));
    }
    return `<figure>${svg}<figcaption>${esc(caption)} (${links.join(', ')})</figcaption></figure>`;
  };
  const train = runs.filter((r): r is TrainRun => r.kind === 'train');
  const compress = runs.filter((r): r is CompressRun => r.kind === 'compress');
  const parts: string[] = [];
  if (train.length > 0) {
    const groups = seedGroups(train);
    if (groups) parts.push(`<h2>Over seeds</h2>${seedTable(groups)}`);
    parts.push(`<h2>Training runs</h2>${trainTable(train)}`);
    if (train.length > 1)
      parts.push(await figure('overlay', overlayFigure(train), 'All training runs, epoch by epoch'));
  }
  for (const r of train) {
    const t = r.teacher
      ? ` Teacher ${r.teacher.model} (${pct(r.teacher.testTop1)}); the student's top-1 class matches the teacher's on ${pct(r.teacherAgreement)} of the test images.`
      : '';
    const split = r.epochs.some((e) => e.valSplit === 'test') ? 'test split' : 'validation split';
    parts.push(
      `<h2>${esc(r.name)}</h2><p>${esc(`${r.model}, ${int(r.params)} parameters, ${r.epochs.length} epochs in ${secs(r.trainSeconds)}; test top-1 ${pct(r.testTop1)}.${t}`)}</p>` +
        (await figure(
          r.name,
          runFigure(r),
          `Per-epoch curves (top-1 measured on the ${split} after each epoch) from ${r.dir}/results.json`,
        )),
    );
  }
  for (const r of compress)
    parts.push(
      `<h2>${esc(r.name)} (compression)</h2>${compressTable(r)}` +
        (await figure(
          r.name,
          compressFigure(r),
          'Each stage of the pipeline; red: the Pareto front (nothing else is as accurate for less)',
        )),
    );
  const title = opts.title ?? (runs.length === 1 ? runs[0]!.name : `${runs.length} runs`);
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(`Retort report: ${title}`)}</title>
<style>${STYLE}</style></head><body>
<h1>${esc(`Retort report: ${title}`)}</h1>
<p class="meta">${esc(`${new Date().toISOString()} — ${runs.map((r) => r.dir).join(', ')}`)}</p>
${parts.join('\n')}
</body></html>
`;
  writeFileAtomic(out, html);
  return { html: out, figures, runs: runs.length };
}
