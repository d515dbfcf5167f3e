/**
 * The search issue's check of the latency table (packages/retort/src/search/latency-table.ts): builds the
 * table for the units of 30 random candidates (+ 6 others to fit the overhead constant) at
 * native/onnxruntime x batch 1/64, then compares predicted with measured whole-model latency.
 *
 *   npm run bench:search-latency -- [--fresh] [--table path]
 *
 * Needs a quiet machine: the table and the whole-model timings are taken minutes apart, and a load
 * change in between shows up as prediction error.
 *
 * Output: progress on stderr; per-setting summary on stdout; JSON in bench/out/search-latency/result.json.
 */
import 'retort-kd-native';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  buildModel,
  checkTable,
  DEFAULT_LATENCY_SETTINGS,
  fitConstantPerUnit,
  fixedKey,
  LatencyTable,
  type MeasureFn,
  resnet,
  settingId,
  summarizeErrors,
} from 'retort-kd';

const dir = 'bench/out/search-latency';
mkdirSync(dir, { recursive: true });
const tableAt = process.argv.indexOf('--table');
const tablePath = tableAt >= 0 ? process.argv[tableAt + 1]! : `${dir}/table.json`;
if (process.argv.includes('--fresh')) rmSync(tablePath, { force: true });
const log = (s: string) => process.stderr.write(`${s}\n`);
await tf.setBackend('native');

function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const base = { inputShape: [28, 28, 1] as [number, number, number], numClasses: 10 };
function candidate(r: () => number, i: number): [string, tfl.LayersModel] {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const u = r();
  const seed = 1000 + i;
  if (u < 0.45) {
    const depth = pick([8, 14, 20]);
    const ws = [pick([8, 16, 24])];
    for (let s = 0; s < 3; s++) ws.push(Math.max(ws.at(-1)!, pick([8, 16, 24, 32, 48, 64])));
    const widths = ws as unknown as [number, number, number, number];
    return [`resnet${depth}[${ws.join(',')}]`, resnet(depth, { ...base, seed, widths })];
  }
  if (u < 0.75) {
    const widthMult = pick([0.25, 0.5, 0.75, 1]);
    const expansion = pick([2, 4, 6]);
    return [
      `mbv2 x${widthMult} t${expansion}`,
      buildModel('mobilenetv2', { ...base, seed, widthMult, expansion }),
    ];
  }
  if (u < 0.9) {
    const netSize = pick([0.2, 0.3, 0.5]);
    return [`shufflev2 ${netSize}`, buildModel('shufflenetv2', { ...base, seed, netSize })];
  }
  return ['resnet20', buildModel('resnet20', { ...base, seed })];
}
const r = rng(42);
const check = Array.from({ length: 30 }, (_, i) => candidate(r, i));
const rc = rng(7);
const calib = Array.from({ length: 6 }, (_, i) => candidate(rc, 100 + i));

const t0 = performance.now();
const load0 = loadavg();
const ortAt = process.argv.indexOf('--ort-threads');
const ortThreads = ortAt >= 0 ? Number(process.argv[ortAt + 1]) : 2;
const table = await LatencyTable.open(tablePath, { ortThreads });
log(`machine ${table.id}: ${JSON.stringify(table.fingerprint)}`);
const unitMeasure = table.measurer({ minTimeMs: 100 });
const wholeMeasure = table.measurer({ minTimeMs: 300 });
const measure: MeasureFn = (req) => (req.what === 'model' ? wholeMeasure(req) : unitMeasure(req));
const all = [...check, ...calib].map(([, m]) => m);
const built = await table.ensure(all, DEFAULT_LATENCY_SETTINGS, measure, (p) => {
  if (p.done % 50 === 0 || p.done === p.total)
    log(
      `  ${p.done}/${p.total} entries (${((performance.now() - t0) / 1000).toFixed(0)} s) last ${settingId(p.setting)} ${p.key}: ${p.ms.toFixed(3)} ms`,
    );
});
const tBuilt = performance.now();
log(
  `table: ${built.measured} entries measured, ${built.cached} cached, ${((tBuilt - t0) / 1000).toFixed(0)} s`,
);

const out: Record<string, unknown> = {};
for (const setting of DEFAULT_LATENCY_SETTINGS) {
  const fit = await table.fitOverhead(
    calib.map(([, m]) => m),
    setting,
    measure,
    { names: calib.map(([n]) => n) },
  );
  const [res] = await checkTable(
    check.map(([, m]) => m),
    table,
    { settings: [setting], measure, names: check.map(([n]) => n) },
  );
  // The same measurements against the other overhead: the fixed entry of the model's output.
  const alt = summarizeErrors(
    setting,
    res!.rows.map((row, i) => {
      const m = check[i]![1];
      const p = table.predict(m, setting);
      const fixed = table.get(setting, fixedKey(m.outputs[0]!.shape.slice(1) as number[]))!;
      return { model: row.model, measuredMs: row.measuredMs, predictedMs: p.ms - p.overheadMs + fixed };
    }),
  );
  // A two-parameter overhead for comparison: c + delta per unit, least squares on relative error.
  const calibRows = calib.map(([, m], i) => {
    const p = table.predict(m, setting);
    const s = p.ms - p.overheadMs;
    return { m: fit.residualMs[i]! + s + fit.ms, s, n: p.units.length };
  });
  const { c: c2, perUnit: d2 } = fitConstantPerUnit(
    calibRows.map((r) => r.m),
    calibRows.map((r) => r.s),
    calibRows.map((r) => r.n),
  );
  const two = summarizeErrors(
    setting,
    res!.rows.map((row, i) => {
      const p = table.predict(check[i]![1], setting);
      return {
        model: row.model,
        measuredMs: row.measuredMs,
        predictedMs: p.ms - p.overheadMs + c2 + d2 * p.units.length,
      };
    }),
  );
  const id = settingId(setting);
  console.log(
    `${id}: two-parameter overhead c=${c2.toFixed(3)} ms + ${(1000 * d2).toFixed(1)} us/unit: median |err| ${(100 * two.medianAbsRelError).toFixed(1)}% (max ${(100 * two.maxAbsRelError).toFixed(0)}%)`,
  );
  console.log(
    `${id}: median |err| ${(100 * res!.medianAbsRelError).toFixed(1)}% (max ${(100 * res!.maxAbsRelError).toFixed(0)}%) with fitted overhead ${fit.ms.toFixed(3)} ms; ${(100 * alt.medianAbsRelError).toFixed(1)}% (max ${(100 * alt.maxAbsRelError).toFixed(0)}%) with the fixed-cost overhead`,
  );
  for (const row of res!.rows)
    log(
      `   ${id} ${row.model.padEnd(28)} measured ${row.measuredMs.toFixed(2).padStart(8)} predicted ${row.predictedMs.toFixed(2).padStart(8)} ${(100 * row.relError).toFixed(0).padStart(4)}%`,
    );
  out[id] = { fitted: res, fixedCost: alt, overhead: fit, twoParam: { c: c2, perUnit: d2, result: two } };
}
const load1 = loadavg();
const summary = {
  seconds: { table: (tBuilt - t0) / 1000, total: (performance.now() - t0) / 1000 },
  loadavg: { start: load0, end: load1 },
  entries: built,
  results: out,
};
writeFileSync(
  `${dir}/result-ort${ortThreads}-native${process.env.RETORT_NUM_THREADS ?? 'default'}.json`,
  JSON.stringify(summary, null, 1),
);
console.log(
  `total ${summary.seconds.total.toFixed(0)} s (table ${summary.seconds.table.toFixed(0)} s); load average ${load0.map((x) => x.toFixed(1)).join('/')} -> ${load1.map((x) => x.toFixed(1)).join('/')}`,
);
