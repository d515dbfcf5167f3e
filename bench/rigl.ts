/**
 * `npm run bench:rigl`: RigL's check of the compression issue on ResNet-8 / Fashion-MNIST. Per
 * seed, three networks trained for the same number of epochs on the same images:
 * - dense: ResNet-8 on labels (configs/fashion-mnist/baseline/resnet8.yaml, on a budget; the same
 *   runs bench:lottery starts from);
 * - rigl: the compress stage `rigl`, sparse from the first step at the target sparsity (ERK layer
 *   densities, drop/grow every 100 steps; Evci et al., ICML 2020), from a fresh initialisation:
 *   it never trains the dense network;
 * - prune after training: the dense network pruned by global magnitude to the same sparsity (AGP)
 *   and fine-tuned for the same number of epochs, the usual alternative.
 * All three on labels only (no KD) with the dense run's optimizer (SGD lr 0.1, Nesterov, weight
 * decay 5e-4); RigL also takes the dense run's schedule (cosine with a warm-up epoch), since it trains
 * from a fresh initialisation too, and prune-after-training fine-tunes on a cosine schedule. Writes
 * bench/results/rigl-fashion-mnist.md.
 *
 *   npm run bench:rigl -- [--seeds 1,2,3] [--train-limit 10000] [--epochs 8] [--sparsity 0.9]
 *                          [--update-every 100] [--runs runs]
 */
import 'retort-kd-native';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  loadExperiment,
  loadRun,
  pipelineSchema,
  runPipeline,
  type StageReport,
  writeFileAtomic,
} from 'retort-kd';
import { argOf, cpuLine, meanSd, runOrReuse } from './lib/runs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const seeds = argOf(args, 'seeds', '1,2,3').split(',').map(Number);
const limit = Number(argOf(args, 'train-limit', '10000'));
const epochs = Number(argOf(args, 'epochs', '8'));
const sparsity = Number(argOf(args, 'sparsity', '0.9'));
const updateEvery = Number(argOf(args, 'update-every', '100'));
const runs = resolve(argOf(args, 'runs', 'runs'));
const base = join(root, 'configs/fashion-mnist/baseline/resnet8.yaml');
const optimizer = { name: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.0005 };
const tag = `n${limit}-e${epochs}`;

interface Row {
  seed: number;
  dense: number;
  rigl: number;
  prune: number;
  riglSparsity: number;
  pruneSparsity: number;
  seconds: number;
}
const denseSchedule = loadExperiment(base).schedule;
const rows: Row[] = [];
const started = performance.now();
for (const seed of seeds) {
  const run = await runOrReuse(
    base,
    [`seed=${seed}`, `name=lottery-resnet8-${tag}-s${seed}`, `data.trainLimit=${limit}`, `epochs=${epochs}`],
    runs,
  );
  const runDir = join(runs, run.name);
  let seconds = 0;
  const pipeline = async (
    name: string,
    section: Record<string, unknown>,
    schedule?: unknown,
  ): Promise<StageReport[]> => {
    const cfg = pipelineSchema.parse({
      name,
      student: { run: runDir },
      finetune: { epochs, optimizer, kd: 0, ...(schedule === undefined ? {} : { schedule }) },
      ...section,
      export: ['onnx'],
    });
    // A pipeline that already ran with this very config is read back (bench.json keeps the config).
    const dir = join(runs, name);
    const mark = join(dir, 'bench.json');
    const text = JSON.stringify(cfg);
    const done = existsSync(mark)
      ? (JSON.parse(readFileSync(mark, 'utf8')) as { config: string; seconds: number })
      : null;
    if (done?.config === text) {
      process.stderr.write(`reusing finished pipeline ${dir}\n`);
      seconds += done.seconds;
      return (JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as { stages: StageReport[] })
        .stages;
    }
    const t0 = performance.now();
    const s = await loadRun(runDir, 'bench:rigl');
    const ref = await loadRun(runDir, 'bench:rigl');
    const reports = await runPipeline(cfg, { model: s.model, teacher: ref.model, data: s.data }, dir, (l) =>
      process.stderr.write(`[${name}] ${l}\n`),
    );
    const took = (performance.now() - t0) / 1000;
    seconds += took;
    writeFileAtomic(mark, `${JSON.stringify({ config: text, seconds: took })}\n`);
    return reports;
  };
  const sp = `sp${sparsity}`;
  // RigL trains from scratch, as the dense run does: the same schedule, warm-up epoch included.
  const u = updateEvery === 100 ? '' : `-u${updateEvery}`;
  const r = await pipeline(
    `rigl-resnet8-${tag}-${sp}${u}-s${seed}`,
    { rigl: { sparsity, seed, updateEvery } },
    denseSchedule,
  );
  const p = await pipeline(`prune-resnet8-${tag}-${sp}-s${seed}`, {
    prune: { kind: 'unstructured', sparsity, scope: 'global', schedule: 'agp' },
  });
  const row = (reports: StageReport[], stage: string) => reports.find((x) => x.stage === stage)!;
  const kernelSparsity = (x: StageReport) => x.zeroWeights / x.params;
  rows.push({
    seed,
    dense: row(r, 'baseline').testTop1,
    rigl: row(r, 'rigl').testTop1,
    prune: row(p, 'prune').testTop1,
    riglSparsity: kernelSparsity(row(r, 'rigl')),
    pruneSparsity: kernelSparsity(row(p, 'prune')),
    seconds,
  });
}

const f2 = (v: number) => v.toFixed(2);
const ms = (xs: number[]) => {
  const { m, sd } = meanSd(xs);
  return `${f2(m)} ± ${f2(sd)}`;
};
const signed = (v: number) => `${v >= 0 ? '+' : ''}${f2(v)}`;
const text = `# RigL: ResNet-8 on Fashion-MNIST

Command: \`npm run bench:rigl -- --seeds ${seeds.join(',')} --train-limit ${limit} --epochs ${epochs} --sparsity ${sparsity}${updateEvery === 100 ? '' : ` --update-every ${updateEvery}`}\`
(${((performance.now() - started) / 60000).toFixed(1)} min wall, ${cpuLine()}).

Per seed, ${epochs} epochs on the first ${limit} training images for each network: dense ResNet-8
(configs/fashion-mnist/baseline/resnet8.yaml: SGD lr 0.1, Nesterov, weight decay 5e-4, cosine with a
warm-up epoch); RigL at ${sparsity * 100}% of the conv and dense kernel weights from a fresh
initialisation with the dense run's optimizer and schedule (ERK densities, drop/grow every ${updateEvery}
steps, alpha 0.3, until 75% of training; a grown connection starts at 0 with its optimizer state
at 0); and the dense network pruned to the same sparsity (global magnitude, AGP over the epochs)
and fine-tuned (cosine, no warm-up).
Labels only (no KD). Test top-1 on the 10,000 test images. Sparsity: zero weights over all
parameters (biases and batch norm are never pruned, so it is a little under the kernels' ${sparsity * 100}%).

| seed | dense | RigL | RigL − dense (pp) | prune after training | RigL − prune (pp) | sparsity RigL / prune | time (RigL + prune) |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${r.seed} | ${f2(r.dense)} | ${f2(r.rigl)} | ${signed(r.rigl - r.dense)} | ${f2(r.prune)} | ${signed(r.rigl - r.prune)} | ${(100 * r.riglSparsity).toFixed(1)}% / ${(100 * r.pruneSparsity).toFixed(1)}% | ${(r.seconds / 60).toFixed(1)} min |`).join('\n')}
| mean ± sd | ${ms(rows.map((r) => r.dense))} | ${ms(rows.map((r) => r.rigl))} | ${ms(rows.map((r) => r.rigl - r.dense))} | ${ms(rows.map((r) => r.prune))} | ${ms(rows.map((r) => r.rigl - r.prune))} | | |

Prune after training costs the dense training plus its fine-tuning (${2 * epochs} epochs in all);
RigL costs its ${epochs} epochs.
`;
writeFileAtomic(join(root, 'bench/results/rigl-fashion-mnist.md'), text);
process.stdout.write(text);
