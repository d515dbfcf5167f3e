/**
 * What a finished search leaves for people: `pareto.md` (every evaluated candidate with its proxy
 * accuracy, latency, parameters and MACs, whether it meets the constraints and whether it is on the
 * accuracy/latency Pareto front, and what the search cost), `pareto.json` (the same, for programs)
 * and `pareto.svg` (accuracy against latency, the front highlighted; drawn with the report's
 * Vega-Lite renderer).
 */
import { join } from 'node:path';
import { frontLayers, renderSvg } from '../report/charts.js';
import { writeFileAtomic } from '../util/atomic.js';
import { type LatencySetting, settingId } from './latency-table.js';
import type { ResolvedStrategy } from './search-config.js';
import {
  best,
  type Constraints,
  type HistoryEntry,
  isScored,
  paretoFront,
  type ScoredEntry,
  violations,
} from './search-history.js';

export interface SearchSummary {
  name: string;
  space: { name: string; size: number };
  strategy: ResolvedStrategy;
  setting: LatencySetting;
  constraints: Constraints;
  /** The model a latencyOf constraint names, with its predicted and whole-model measured latency. */
  reference?: { model: string; predictedMs: number; measuredMs: number };
  /** Which split the proxy accuracy is measured on. */
  accuracySplit: 'validation' | 'test';
  proxy: { epochs: number; trainImages: number | undefined };
  /** Wall-clock seconds of the search, over every resumed part. */
  seconds: number;
  history: readonly HistoryEntry[];
}

export interface SummaryRow {
  key: string;
  rung: number;
  accuracy: number | null;
  latencyMs: number;
  params: number;
  macs: number;
  feasible: boolean;
  front: boolean;
  error?: string;
}

/** The accuracy/latency Pareto front of the feasible scored entries (highest rung per key). */
export function searchFront(history: readonly HistoryEntry[], constraints: Constraints): ScoredEntry[] {
  const feasible = history.filter((e) => violations(e.cost, constraints).length === 0);
  return paretoFront(feasible, ['accuracy', 'latencyMs']);
}

/** One row per evaluation: the most accurate first, failed ones last. */
export function summaryRows(s: SearchSummary): SummaryRow[] {
  const front = new Set(searchFront(s.history, s.constraints).map((e) => e.order));
  return [...s.history]
    .sort((a, b) => (b.accuracy ?? -1) - (a.accuracy ?? -1) || b.rung - a.rung || a.order - b.order)
    .map((e) => ({
      key: e.key,
      rung: e.rung,
      accuracy: e.accuracy,
      latencyMs: e.cost.latencyMs,
      params: e.cost.params,
      macs: e.cost.macs,
      feasible: violations(e.cost, s.constraints).length === 0,
      front: front.has(e.order),
      ...(e.error !== undefined ? { error: e.error } : {}),
    }));
}

const int = (x: number) => Math.round(x).toLocaleString('en-US');

function duration(s: number): string {
  if (s < 90) return `${s.toFixed(0)} s`;
  if (s < 5400) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(2)} h`;
}

/** The constraints in words ('latency <= 0.412 ms, params <= 100,000'), or 'none'. */
export function constraintsText(c: Constraints): string {
  const parts = [
    c.maxLatencyMs !== undefined ? `latency <= ${c.maxLatencyMs.toFixed(4)} ms` : '',
    c.maxParams !== undefined ? `params <= ${int(c.maxParams)}` : '',
    c.maxMacs !== undefined ? `MACs <= ${int(c.maxMacs)}` : '',
  ].filter((p) => p !== '');
  return parts.join(', ') || 'none';
}

function strategyText(t: ResolvedStrategy): string {
  return t.name === 'evolution'
    ? `aging evolution: population ${t.population}, tournament ${t.sample}, ${t.cycles} cycles, ${t.parallel} at a time, seed ${t.seed}`
    : `successive halving: ${t.candidates} candidates, eta ${t.eta}${t.rungs !== undefined ? `, at most ${t.rungs} rungs` : ''}, ${t.parallel} at a time, seed ${t.seed}`;
}

/** pareto.md. */
export function paretoMarkdown(s: SearchSummary): string {
  const rows = summaryRows(s);
  const halving = s.strategy.name === 'halving';
  const top = best(s.history, s.constraints);
  const failed = s.history.filter((e) => !isScored(e)).length;
  const ref = s.reference;
  const lines = [
    `# Student search ${s.name}`,
    '',
    `- space: ${s.space.name} (${s.space.size.toLocaleString('en-US')} candidates); ${strategyText(s.strategy)}`,
    `- proxy: ${s.proxy.epochs} epoch(s)${halving ? ` at rung 0, times eta per rung` : ''} on ${s.proxy.trainImages !== undefined ? `${int(s.proxy.trainImages)} training images` : 'the training split'}; accuracy: ${s.accuracySplit} top-1 (%)`,
    `- latency: ${settingId(s.setting)}, predicted by the latency table of this machine`,
    `- constraints: ${constraintsText(s.constraints)}${ref ? ` (${ref.model}: ${ref.predictedMs.toFixed(4)} ms predicted, ${ref.measuredMs.toFixed(4)} ms measured as a whole model)` : ''}`,
    `- search cost: ${duration(s.seconds)} wall time, ${s.history.length} evaluations (${new Set(s.history.map((e) => e.key)).size} candidates, ${failed} failed)`,
    `- best feasible: ${top ? `${top.key}, ${top.accuracy.toFixed(2)}%, ${top.cost.latencyMs.toFixed(4)} ms, ${int(top.cost.params)} params${halving ? ` (rung ${top.rung})` : ''}` : 'none'}`,
    '',
    `| key |${halving ? ' rung |' : ''} accuracy (%) | latency (ms) | params | MACs | feasible | on the front |`,
    `| --- |${halving ? ' ---: |' : ''} ---: | ---: | ---: | ---: | --- | --- |`,
    ...rows.map(
      (r) =>
        `| ${r.key} |${halving ? ` ${r.rung} |` : ''} ${r.accuracy === null ? `failed${r.error ? `: ${r.error.replace(/\|/g, '/').slice(0, 80)}` : ''}` : r.accuracy.toFixed(2)} | ${r.latencyMs.toFixed(4)} | ${int(r.params)} | ${int(r.macs)} | ${r.feasible ? 'yes' : 'no'} | ${r.front ? 'yes' : ''} |`,
    ),
    '',
    'The front: no other feasible candidate is at least as accurate and at least as fast, and better in one of the two.',
    '',
  ];
  return lines.join('\n');
}

/** The strategy's own fields (evolution's or halving's). */
function strategyFields(t: ResolvedStrategy): Record<string, unknown> {
  const { name, parallel, seed } = t;
  return t.name === 'evolution'
    ? { name, population: t.population, sample: t.sample, cycles: t.cycles, parallel, seed }
    : {
        name,
        candidates: t.candidates,
        eta: t.eta,
        ...(t.rungs !== undefined ? { rungs: t.rungs } : {}),
        parallel,
        seed,
      };
}

/** pareto.json. */
export function paretoJson(s: SearchSummary): Record<string, unknown> {
  const top = best(s.history, s.constraints);
  return {
    name: s.name,
    space: s.space,
    strategy: strategyFields(s.strategy),
    latency: s.setting,
    constraints: s.constraints,
    ...(s.reference ? { reference: s.reference } : {}),
    accuracySplit: s.accuracySplit,
    proxy: s.proxy,
    seconds: s.seconds,
    evaluations: s.history.length,
    failed: s.history.filter((e) => !isScored(e)).length,
    best: top ?? null,
    front: searchFront(s.history, s.constraints).map((e) => e.key),
    rows: summaryRows(s),
  };
}

/** pareto.svg: accuracy against latency, the front as a line, the latency bound as a rule. */
export async function paretoSvg(s: SearchSummary): Promise<string> {
  const rows = summaryRows(s).filter((r) => r.accuracy !== null);
  const { encoding, layers } = frontLayers(
    rows.map((r) => ({ label: r.key, x: r.latencyMs, y: r.accuracy!, front: r.front })),
    `latency (ms, ${settingId(s.setting)})`,
    `proxy ${s.accuracySplit} top-1 (%)`,
    'front',
  );
  const bound = s.constraints.maxLatencyMs;
  return renderSvg({
    title: `${s.name}: ${rows.length} candidates of ${s.space.name}`,
    width: 420,
    height: 280,
    config: { font: 'Helvetica, Arial, sans-serif', view: { stroke: '#ddd' } },
    layer: [
      ...(bound !== undefined
        ? [
            {
              data: { values: [{ bound }] },
              mark: { type: 'rule' as const, color: '#888', strokeDash: [4, 3] },
              encoding: { x: { ...encoding.x, field: 'bound' } },
            },
          ]
        : []),
      ...layers,
    ],
  });
}

/** Writes pareto.md, pareto.json and pareto.svg into `dir` (atomically); returns their paths. */
export async function writeSearchReport(
  dir: string,
  s: SearchSummary,
): Promise<{ md: string; json: string; svg: string }> {
  const out = { md: join(dir, 'pareto.md'), json: join(dir, 'pareto.json'), svg: join(dir, 'pareto.svg') };
  writeFileAtomic(out.md, paretoMarkdown(s));
  writeFileAtomic(out.json, `${JSON.stringify(paretoJson(s), null, 1)}\n`);
  writeFileAtomic(out.svg, await paretoSvg(s));
  return out;
}
