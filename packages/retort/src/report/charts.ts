/**
 * The report's figures as Vega-Lite specs, rendered to SVG in Node by Vega's headless view (no
 * browser, no canvas: SVG text is measured by Vega's own estimate). Each figure is one spec, so a
 * run's four curves and its confusion matrix cost one view.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { CompressRun, CompressStage, TrainRun } from './read.js';

type Spec = vl.TopLevelSpec;

const W = 190;
const H = 150;
const CONFIG = {
  font: 'Helvetica, Arial, sans-serif',
  axis: { labelFontSize: 10, titleFontSize: 11, grid: true, gridColor: '#eee' },
  legend: { labelFontSize: 10, titleFontSize: 10, orient: 'bottom' as const },
  title: { fontSize: 12, anchor: 'start' as const },
  view: { stroke: '#ddd' },
};

/** SVG text of a Vega-Lite spec. */
export async function renderSvg(spec: Spec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const epochX = { field: 'epoch', type: 'quantitative' as const, title: 'epoch', axis: { tickMinStep: 1 } };

function line(
  title: string,
  values: Record<string, unknown>[],
  y: { field: string; title: string; zero?: boolean; log?: boolean },
  color?: string,
) {
  return {
    title,
    width: W,
    height: H,
    data: { values },
    mark: { type: 'line' as const, point: { size: 18 } },
    encoding: {
      x: epochX,
      y: {
        field: y.field,
        type: 'quantitative' as const,
        title: y.title,
        scale: { zero: y.zero ?? false, ...(y.log ? { type: 'log' as const } : {}) },
      },
      ...(color ? { color: { field: color, type: 'nominal' as const, title: null } } : {}),
    },
  };
}

/** A training run: loss terms, top-1 (train and validation/test), learning rate, img/s; confusion. */
export function runFigure(run: TrainRun): Spec {
  const loss = run.epochs.flatMap((e) => [
    { epoch: e.epoch, series: 'total', value: e.trainLoss },
    ...Object.entries(e.terms).map(([k, v]) => ({ epoch: e.epoch, series: k, value: v })),
  ]);
  // A single term equal to the total is drawn once.
  const terms = new Set(loss.map((r) => r.series));
  const lossRows = terms.size === 2 ? loss.filter((r) => r.series === 'total') : loss;
  const top1 = run.epochs.flatMap((e) => [
    { epoch: e.epoch, split: 'train (running)', value: e.trainTop1 },
    ...(e.valTop1 !== undefined
      ? [{ epoch: e.epoch, split: e.valSplit === 'test' ? 'test' : 'validation', value: e.valTop1 }]
      : []),
  ]);
  const perEpoch = run.epochs.map((e) => ({ epoch: e.epoch, lr: e.lr, imgPerSec: e.imgPerSec }));
  const curves = {
    // Each panel its own colours and legend (loss terms, splits).
    resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } },
    hconcat: [
      line('training loss (unweighted terms)', lossRows, { field: 'value', title: 'loss' }, 'series'),
      line('top-1 (%)', top1, { field: 'value', title: 'top-1 (%)' }, 'split'),
      line('learning rate (end of epoch)', perEpoch, { field: 'lr', title: 'lr', zero: true }),
      line('training speed', perEpoch, { field: 'imgPerSec', title: 'images / s', zero: true }),
    ],
  };
  const rows: Record<string, unknown>[] = [curves];
  if (run.confusion) rows.push(confusionSpec(run.confusion, run.classNames));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: CONFIG,
    vconcat: rows,
  } as unknown as Spec;
}

function confusionSpec(m: number[][], names?: string[]) {
  const label = (i: number) => `${i}${names?.[i] ? ` ${names[i]}` : ''}`;
  const order = m.map((_, i) => label(i));
  const values = m.flatMap((row, t) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return row.map((count, p) => ({ truth: label(t), predicted: label(p), count, share: count / total }));
  });
  const axis = (field: string, title: string) => ({
    field,
    type: 'ordinal' as const,
    title,
    sort: order,
    axis: { grid: false, ticks: false, domain: false },
  });
  return {
    title: 'confusion matrix on the test split (rows: true class; colour: share of the row)',
    width: Math.max(200, 26 * m.length),
    height: Math.max(200, 26 * m.length),
    data: { values },
    encoding: { x: axis('predicted', 'predicted'), y: axis('truth', 'true class') },
    layer: [
      {
        mark: 'rect' as const,
        encoding: {
          color: { field: 'share', type: 'quantitative' as const, scale: { scheme: 'blues' }, legend: null },
        },
      },
      {
        mark: { type: 'text' as const, fontSize: 9 },
        encoding: {
          text: { field: 'count', type: 'quantitative' as const },
          color: { condition: { test: 'datum.share > 0.5', value: 'white' }, value: 'black' },
        },
      },
    ],
  };
}

/** Several training runs: evaluation top-1 and training loss per epoch, one line per run. */
export function overlayFigure(runs: readonly TrainRun[]): Spec {
  const top1 = runs.flatMap((r) =>
    r.epochs
      .filter((e) => e.valTop1 !== undefined)
      .map((e) => ({ epoch: e.epoch, run: r.name, value: e.valTop1 })),
  );
  const loss = runs.flatMap((r) =>
    r.epochs.map((e) => ({ epoch: e.epoch, run: r.name, value: e.trainLoss })),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: { ...CONFIG, legend: { ...CONFIG.legend, columns: 2, labelLimit: 320 } },
    hconcat: [
      line('top-1 per epoch (validation or test split)', top1, { field: 'value', title: 'top-1 (%)' }, 'run'),
      line('training loss per epoch', loss, { field: 'value', title: 'loss' }, 'run'),
    ].map((s) => ({ ...s, width: 330, height: 200 })),
  } as unknown as Spec;
}

/** The stored size of a stage: its ONNX file for exports, else the smallest exact storage. */
export function stageBytes(s: CompressStage): number {
  if (s.onnx) return s.onnx.bytes;
  return Math.min(s.bytes.fp32, s.bytes.sparse, s.bytes.clustered ?? Number.POSITIVE_INFINITY);
}

/** A stage's accuracy: onnxruntime's on the exported file for exports, else the tfjs model's. */
export function stageTop1(s: CompressStage): number {
  return s.onnx?.top1 ?? s.testTop1;
}

/**
 * Points on the Pareto front (no other point is at least as accurate and at most as costly, one
 * of the two strictly), for cost x (lower is better) and accuracy y (higher is better).
 */
export function paretoFront<T>(points: readonly T[], x: (p: T) => number, y: (p: T) => number): Set<T> {
  const front = new Set<T>();
  for (const p of points) {
    const dominated = points.some(
      (q) => q !== p && x(q) <= x(p) && y(q) >= y(p) && (x(q) < x(p) || y(q) > y(p)),
    );
    if (!dominated) front.add(p);
  }
  return front;
}

/** One point of an accuracy-against-cost chart. */
export interface FrontPoint {
  label: string;
  /** Cost (lower is better). */
  x: number;
  /** Accuracy (higher is better). */
  y: number;
  front: boolean;
}

/**
 * The layers of an accuracy-against-cost chart (the compression report's trade-offs, the search's
 * Pareto front): the front as a line, every point coloured by whether it is on it, and labels on
 * every point or on the front's only. `encoding` is the x/y encoding, for layers a caller adds.
 */
export function frontLayers(
  points: readonly FrontPoint[],
  xTitle: string,
  yTitle: string,
  labels: 'all' | 'front',
) {
  const values = points.map((p) => ({
    label: p.label,
    x: p.x,
    y: p.y,
    group: p.front ? 'Pareto front' : 'dominated',
  }));
  const frontLine = values.filter((v) => v.group === 'Pareto front').sort((a, b) => a.x - b.x);
  const encoding = {
    x: { field: 'x', type: 'quantitative' as const, title: xTitle, scale: { zero: false } },
    y: { field: 'y', type: 'quantitative' as const, title: yTitle, scale: { zero: false } },
  };
  const layers = [
    { data: { values: frontLine }, mark: { type: 'line' as const, color: '#d62728' }, encoding },
    {
      data: { values },
      mark: { type: 'point' as const, filled: true, size: 60 },
      encoding: {
        ...encoding,
        color: {
          field: 'group',
          type: 'nominal' as const,
          title: null,
          scale: { domain: ['Pareto front', 'dominated'], range: ['#d62728', '#999'] },
        },
        tooltip: [{ field: 'label', type: 'nominal' as const }],
      },
    },
    {
      data: { values: labels === 'all' ? values : frontLine },
      mark: { type: 'text' as const, dx: 6, dy: -6, align: 'left' as const, fontSize: 9 },
      encoding: { ...encoding, text: { field: 'label', type: 'nominal' as const } },
    },
  ];
  return { encoding, layers };
}

function tradeoff(
  title: string,
  xTitle: string,
  stages: readonly CompressStage[],
  x: (s: CompressStage) => number,
) {
  const front = paretoFront(stages, x, stageTop1);
  const points = stages.map((s) => ({ label: s.stage, x: x(s), y: stageTop1(s), front: front.has(s) }));
  return {
    title,
    width: W,
    height: H + 20,
    layer: frontLayers(points, xTitle, 'test top-1 (%)', 'all').layers,
  };
}

/** A compression run: accuracy against size, MACs and (for exports) onnxruntime latency. */
export function compressFigure(run: CompressRun): Spec {
  const exports = run.stages.filter((s) => s.onnx !== undefined);
  const panels = [
    tradeoff('accuracy vs stored size', 'bytes', run.stages, stageBytes),
    tradeoff('accuracy vs compute', 'MACs per image', run.stages, (s) => s.macs),
    ...(exports.length > 0
      ? [
          tradeoff(
            'accuracy vs latency (ONNX exports)',
            'ms per image, batch 1',
            exports,
            (s) => s.onnx!.latencyB1Ms,
          ),
        ]
      : []),
  ];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: CONFIG,
    resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } },
    hconcat: panels,
  } as unknown as Spec;
}
