/**
 * `npm run bench:compress-family`: the compression stages whose check needs their own model, each
 * run as a user would run it (`retort compress <config>`), with the rows written to
 * bench/results/compress-family-fashion-mnist.md:
 * - tucker: Tucker-2 of the PyTorch-trained ResNet-20 imported from ONNX
 *   (configs/fashion-mnist/compress/onnx-resnet20-tucker.yaml); the check is conv MACs -50% with
 *   at most 1 pp lost after fine-tuning.
 * - hash: HashedNets on an MLP trained here (configs/fashion-mnist/baseline/mlp.yaml, then
 *   configs/fashion-mnist/compress/mlp-hash.yaml); the check is 8x fewer stored weights, with the
 *   accuracy drop stated.
 * The lottery-ticket check has its own script (bench:lottery), as it needs several seeds.
 *
 *   npm run bench:compress-family -- [--runs runs] [--rows tucker,hash]
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type StageReport, writeFileAtomic } from 'retort-kd';
import { argOf, cpuLine, runOrReuse } from './lib/runs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const runs = resolve(argOf(args, 'runs', 'runs'));
const cfg = (p: string) => join(root, 'configs/fashion-mnist', p);

interface Row {
  key: string;
  what: string;
  config: string;
  /** Runs the pipeline needs first. */
  before?: () => Promise<unknown>;
}
const ROWS: Row[] = [
  {
    key: 'tucker',
    what: 'Tucker-2 of the block convs, half their weights (ONNX ResNet-20 from PyTorch)',
    config: cfg('compress/onnx-resnet20-tucker.yaml'),
  },
  {
    key: 'hash',
    what: 'HashedNets, every dense kernel 8x fewer stored weights (MLP 784-256-128-10)',
    config: cfg('compress/mlp-hash.yaml'),
    before: () => runOrReuse(cfg('baseline/mlp.yaml'), [], runs),
  },
];
const only = argOf(args, 'rows', '');
const rows = only ? ROWS.filter((r) => only.split(',').includes(r.key)) : ROWS;
if (only && rows.length !== only.split(',').length)
  throw new Error(`bench:compress-family: --rows takes ${ROWS.map((r) => r.key).join(', ')}; got ${only}`);

const lines: string[] = [];
for (const row of rows) {
  await row.before?.();
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [join(root, 'packages/retort/bin/retort.js'), 'compress', row.config, '--runs', runs, '--force'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  if (r.status !== 0)
    throw new Error(`bench:compress-family: retort compress ${row.config} exited with ${r.status}`);
  const secs = (performance.now() - t0) / 1000;
  const name = (readFileSync(row.config, 'utf8').match(/^name:\s*(\S+)/m) ?? [])[1]!;
  const { stages } = JSON.parse(readFileSync(join(runs, name, 'results.json'), 'utf8')) as {
    stages: StageReport[];
  };
  const base = stages.find((s) => s.stage === 'baseline')!;
  const done = stages.find((s) => s.stage === row.key)!;
  const onnx = stages.find((s) => s.onnx?.format === 'onnx');
  const stored = done.storedWeights ?? done.params;
  const fmt = (n: number) => n.toLocaleString('en-US');
  lines.push(
    `| ${row.key} | ${row.what} | ${base.testTop1.toFixed(2)} | ${done.testTop1.toFixed(2)} | ${(done.testTop1 - base.testTop1).toFixed(2)} | ${onnx ? onnx.onnx!.top1.toFixed(2) : ''} | ${fmt(base.params)} → ${fmt(stored)} (${(base.params / stored).toFixed(2)}x) | ${fmt(base.macs)} → ${fmt(done.macs)} (${(100 * (done.macs / base.macs - 1)).toFixed(1)}%) | ${secs.toFixed(0)} s |`,
  );
}

const text = `# Fashion-MNIST: the compression stages checked on their own models

Command: \`npm run bench:compress-family${only ? ` -- --rows ${only}` : ''}\` (${cpuLine()}).
Each row is \`retort compress <config>\` (the configs named in bench/compress-family.ts): the
baseline is the model before the stage, the stage row after its fine-tuning (CE + KD from the
baseline, the config's epochs), both on the 10,000 test images; ONNX is onnxruntime's top-1 on the
exported model. Stored weights: the parameters the compressed form keeps (HashedNets: its buckets
and the unhashed weights, as its .rtz bundle stores them; the ONNX and tfjs exports hold the dense
kernels they expand to). MACs: per image.

| stage | what | baseline top-1 | after | Δ (pp) | ONNX top-1 | stored weights | MACs | time |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${lines.join('\n')}
`;
writeFileAtomic(join(root, 'bench/results/compress-family-fashion-mnist.md'), text);
process.stdout.write(text);
