/**
 * `npm run bench:search`: the student search issue's end-to-end check on Fashion-MNIST. Runs
 * `retort search` on configs/fashion-mnist/search/plain-cnn-under-resnet8.yaml (plain-CNN space, no
 * slower than ResNet-8 in onnxruntime at batch 1, KD proxy from the ResNet-20 teacher), then trains
 * the chosen candidate in full (its best.yaml: the KD recipe of kd/resnet8-from-resnet20.yaml) and
 * ResNet-8 with that same recipe, over the same seeds, and times both exports side by side in
 * onnxruntime. Writes bench/results/search-fashion-mnist.md and copies the Pareto plot beside it.
 *
 *   npm run bench:search -- [--seeds 3] [--jobs 2] [--runs runs] [--config file] [--threads 2]
 *
 * Finished runs are reused (the teacher, the search's candidates, the full runs), so a second
 * invocation only re-times the exports and rewrites the table. The teacher is trained first when
 * missing (configs/fashion-mnist/baseline/resnet20.yaml, about an hour on 2 cores).
 */
import 'retort-kd-native';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  exportOnnx,
  loadExperiment,
  loadRun,
  measureOrtLatencies,
  modelStats,
  type RunResults,
  readConfigFile,
  search,
  writeFileAtomic,
} from 'retort-kd';
import { argOf, cpuLine, meanSd, runMany, runOrReuse } from './lib/runs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const seeds = Number(argOf(args, 'seeds', '3'));
const jobs = Number(argOf(args, 'jobs', '2'));
const runs = argOf(args, 'runs', 'runs');
// onnxruntime intra-op threads: 2, as the search's latency table is timed.
const threads = Number(argOf(args, 'threads', '2'));
const config = resolve(
  argOf(args, 'config', join(root, 'configs/fashion-mnist/search/plain-cnn-under-resnet8.yaml')),
);
const cfgDir = join(root, 'configs/fashion-mnist');
const log = (s: string) => process.stderr.write(`${s}\n`);

const t0 = performance.now();
const teacher = await runOrReuse(join(cfgDir, 'baseline/resnet20.yaml'), [], runs);
const teacherSet = `teacher.run=${join(runs, teacher.name)}`;

// The search: resumed when a state exists (a finished one only rewrites its files), candidate runs reused.
const raw = readConfigFile(config) as {
  name?: unknown;
  search?: { proxy?: { epochs?: number; trainLimit?: number; valFraction?: number } };
};
const searchName = String(raw.name);
const proxy = raw.search?.proxy ?? {};
const stateFile = join(runs, searchName, 'search', 'state.json');
const tSearch = performance.now();
const found = await search(config, {
  runsRoot: runs,
  overrides: [teacherSet],
  local: jobs,
  ...(existsSync(stateFile) ? { resume: true } : {}),
  log,
});
const searchWall = (performance.now() - tSearch) / 1000;
if (!found.done || !found.best || !found.files?.bestYaml)
  throw new Error(`search ${found.name} ended without a feasible candidate (see ${found.dir}/pareto.md)`);
const best = found.best;
const bestYaml = found.files.bestYaml;
const bestName = loadExperiment(bestYaml, []).name;

// Full training, the winner and ResNet-8 with the same recipe and seeds (ResNet-8's runs are
// bench:accuracy's KD runs, so either bench reuses the other's).
const r8file = join(cfgDir, 'kd/resnet8-from-resnet20.yaml');
const r8exp = loadExperiment(r8file, []);
const r8name = r8exp.name;
// The full-training recipe as the file gives it, for the results text.
const recipeText = (() => {
  const e = r8exp;
  const losses = e.losses
    .map((l) => `${l.name.toUpperCase()} ${l.weight}${'T' in l ? ` (T ${String(l['T'])})` : ''}`)
    .join(' + ');
  const o = e.optimizer;
  const opt = `${o.name} ${o.lr}${'nesterov' in o && o.nesterov ? ' nesterov' : ''}`;
  const images = e.data.trainLimit ? `the first ${e.data.trainLimit.toLocaleString('en-US')}` : 'all 60,000';
  return `${losses}, ${opt}, ${e.schedule.kind} schedule, ${e.epochs} epochs on ${images} images`;
})();
const seedList = Array.from({ length: seeds }, (_, i) => i + 1);
const tasks = seedList.flatMap((s) => [
  { file: bestYaml, sets: [`seed=${s}`, `name=${bestName}-s${s}`, teacherSet] },
  { file: r8file, sets: [`seed=${s}`, `name=${r8name}-s${s}`, teacherSet] },
]);
const tFull = performance.now();
const done = await runMany(tasks, runs, jobs);
const fullWall = (performance.now() - tFull) / 1000;
const winner = done.filter((_, i) => i % 2 === 0);
const r8 = done.filter((_, i) => i % 2 === 1);

// Latency measured, not predicted: both seed-1 exports timed interleaved in one process.
const onnxOf = async (r: RunResults) => {
  const { model, data } = await loadRun(r.runDir, 'bench:search');
  const bytes = exportOnnx(model);
  const { macs } = modelStats(model);
  model.dispose();
  return { bytes, shape: data.shape, macs };
};
const a = await onnxOf(winner[0]!);
const b = await onnxOf(r8[0]!);
const timing = { threads, rounds: 7, repeats: 20, warmup: 5 };
const load = loadavg()[0]!.toFixed(1);
const [w1, r1] = await measureOrtLatencies([a.bytes, b.bytes], a.shape, 1, timing);
const [w64, r64] = await measureOrtLatencies([a.bytes, b.bytes], a.shape, 64, timing);

const wm = meanSd(winner.map((r) => r.testTop1));
const rm = meanSd(r8.map((r) => r.testTop1));
const diffs = winner.map((r, i) => r.testTop1 - r8[i]!.testTop1);
const dm = meanSd(diffs);
const se = dm.sd / Math.sqrt(diffs.length);
const f = (x: number, d = 2) => x.toFixed(d);
const pm = (s: { m: number; sd: number }) => `${f(s.m)} ± ${f(s.sd)}`;
const evaluated = found.history.length;
const failed = found.history.filter((h) => !Number.isFinite(h.accuracy)).length;
const fmtInt = (n: number) => n.toLocaleString('en-US');
const wall = (performance.now() - t0) / 1000;

const resultsDir = join(root, 'bench/results');
mkdirSync(resultsDir, { recursive: true });
copyFileSync(found.files.svg, join(resultsDir, 'search-fashion-mnist-pareto.svg'));
const paretoMd = readFileSync(found.files.md, 'utf8')
  .replace(/^# /m, '## ')
  .replace(/^## (?!Pareto)/gm, '### ');

const lines = [
  '# Fashion-MNIST: a searched student against ResNet-8, both distilled from ResNet-20',
  '',
  `Command: \`npm run bench:search -- --seeds ${seeds} --jobs ${jobs}\` on ${cpuLine()}; wall time of this invocation ${f(wall / 60, 1)} min (finished runs it reused count as 0).`,
  '',
  `Search: \`retort search ${config.slice(root.length + 1)}\` (space ${found.spaceSize.toLocaleString('en-US')} candidates; ${evaluated} evaluated, ${failed} failed; ${f(found.seconds / 60, 1)} min of search wall time over all its invocations, ${f(searchWall / 60, 1)} min in this one). Each candidate: the KD recipe below for ${proxy.epochs ?? 1} epoch(s) on ${proxy.trainLimit ? `the first ${fmtInt(proxy.trainLimit)}` : 'all'} training images${proxy.valFraction ? `, scored on the ${100 * proxy.valFraction}% of them held out` : ', scored on the test images'}; its latency predicted by the per-layer latency table of this machine. Constraint: ${found.reference ? `no slower than ${found.reference.model} at onnxruntime batch ${found.setting.batch} as the table predicts it (${f(found.reference.predictedMs, 3)} ms; measured whole ${f(found.reference.measuredMs, 3)} ms)` : JSON.stringify(found.constraints)}.`,
  '',
  `Chosen: \`${best.key}\` (${fmtInt(best.cost.params)} parameters, ${fmtInt(best.cost.macs)} MACs, predicted ${f(best.cost.latencyMs, 3)} ms), written as ${bestYaml} and trained in full with that file.`,
  '',
  `Full training: ${r8file.slice(root.length + 1)}'s recipe for both (${recipeText}, teacher ${teacher.name} at ${f(teacher.testTop1)}%), seeds ${seedList.join(', ')}; ${f(fullWall / 60, 1)} min in this invocation (${jobs} runs at a time).`,
  '',
  '| student | params | MACs | ORT b1 ms (measured) | ORT b64 ms | test top-1 per seed | mean ± sd |',
  '| --- | ---: | ---: | ---: | ---: | --- | ---: |',
  `| searched \`${best.key}\` | ${fmtInt(best.cost.params)} | ${fmtInt(a.macs)} | ${f(w1!.medianMs, 3)} | ${f(w64!.medianMs)} | ${winner.map((r) => f(r.testTop1)).join(', ')} | ${pm(wm)} |`,
  `| resnet8 | ${fmtInt(r8[0]!.params)} | ${fmtInt(b.macs)} | ${f(r1!.medianMs, 3)} | ${f(r64!.medianMs)} | ${r8.map((r) => f(r.testTop1)).join(', ')} | ${pm(rm)} |`,
  '',
  `**Searched − ResNet-8, paired by seed: ${dm.m >= 0 ? '+' : ''}${f(dm.m)} pp (per seed ${diffs.map((d) => f(d)).join(', ')}; SE ${f(se)})**; latency at batch 1: ${f(w1!.medianMs / r1!.medianMs)}x ResNet-8's (onnxruntime, ${threads} intra-op thread(s), the two models interleaved: ${timing.rounds} rounds x ${timing.repeats} runs, medians; 1-minute load average ${load} when the timing started).`,
  '',
  "The Pareto plot: [search-fashion-mnist-pareto.svg](search-fashion-mnist-pareto.svg). The search's own table (`search/pareto.md`):",
  '',
  paretoMd,
];
writeFileAtomic(join(resultsDir, 'search-fashion-mnist.md'), `${lines.join('\n')}\n`);
log(`wrote bench/results/search-fashion-mnist.md (${f(wall / 60, 1)} min)`);
