/**
 * `npm run bench:mixed-precision`: the mixed-precision check of the compression issue. From one
 * trained ResNet-8 (bench:lottery's dense run of a seed: configs/fashion-mnist/baseline/resnet8.yaml
 * on a budget, trained here or reused), two pipelines with the same fine-tuning (the pipeline's
 * default: 2 epochs of CE + KD from the model itself): every kernel at 8 bits (the control, the
 * same QAT path and grid), and 8/6/4 bits per layer chosen by the sensitivity scan within 75% of the
 * 8-bit kernel bytes. Both export int8 ONNX. Writes bench/results/mixed-precision-fashion-mnist.md.
 *
 *   npm run bench:mixed-precision -- [--seed 1] [--train-limit 10000] [--epochs 8] [--budget 0.75] [--runs runs]
 */
import 'retort-kd-native';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRun, pipelineSchema, runPipeline, type StageReport, writeFileAtomic } from 'retort-kd';
import { argOf, cpuLine, runOrReuse } from './lib/runs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const seed = Number(argOf(args, 'seed', '1'));
const limit = Number(argOf(args, 'train-limit', '10000'));
const epochs = Number(argOf(args, 'epochs', '8'));
const budget = Number(argOf(args, 'budget', '0.75'));
const runs = resolve(argOf(args, 'runs', 'runs'));
const started = performance.now();
const run = await runOrReuse(
  join(root, 'configs/fashion-mnist/baseline/resnet8.yaml'),
  [
    `seed=${seed}`,
    `name=lottery-resnet8-n${limit}-e${epochs}-s${seed}`,
    `data.trainLimit=${limit}`,
    `epochs=${epochs}`,
  ],
  runs,
);
const runDir = join(runs, run.name);
const rows: { label: string; r: StageReport; onnx: StageReport }[] = [];
for (const [label, section] of [
  ['all 8-bit (control)', { bits: [8], budget: { fractionOf8bit: 1 } }],
  [
    `8/6/4-bit, budget ${budget * 100}% of 8-bit`,
    { bits: [8, 6, 4], budget: { fractionOf8bit: budget }, scanBatches: 4 },
  ],
] as const) {
  const name = `mixed-precision-${label.startsWith('all') ? 'b8' : `b${budget}`}-s${seed}`;
  const cfg = pipelineSchema.parse({
    name,
    student: { run: runDir },
    mixedPrecision: section,
    export: ['onnx-int8'],
  });
  const s = await loadRun(runDir, 'bench:mixed-precision');
  const ref = await loadRun(runDir, 'bench:mixed-precision');
  const reports = await runPipeline(
    cfg,
    { model: s.model, teacher: ref.model, data: s.data },
    join(runs, name),
    (l) => process.stderr.write(`[${name}] ${l}\n`),
  );
  rows.push({
    label,
    r: reports.find((x) => x.stage === 'mixed-precision')!,
    onnx: reports.find((x) => x.onnx?.format === 'onnx-int8')!,
  });
  if (rows.length === 1) rows.unshift({ label: 'baseline (fp32)', r: reports[0]!, onnx: reports[0]! });
}
const base = rows[0]!.r.testTop1;
const line = ({ label, r, onnx }: (typeof rows)[number]) => {
  const wb = r.weightBits;
  const bits = wb
    ? `${wb.packedBytes.toLocaleString('en-US')} B (${((100 * wb.packedBytes) / wb.int8Bytes).toFixed(1)}%)`
    : '';
  const ort = onnx.onnx ? `${onnx.onnx.top1.toFixed(2)} (${(onnx.onnx.top1 - base).toFixed(2)})` : '';
  const layers = wb ? Object.values(wb.layers).join('/') : '';
  return `| ${label} | ${r.testTop1.toFixed(2)} (${(r.testTop1 - base).toFixed(2)}) | ${ort} | ${bits} | ${layers} |`;
};
const text = `# Mixed precision: ResNet-8 on Fashion-MNIST

Command: \`npm run bench:mixed-precision -- --seed ${seed} --train-limit ${limit} --epochs ${epochs} --budget ${budget}\`
(${((performance.now() - started) / 60000).toFixed(1)} min wall, ${cpuLine()}).

The model: ResNet-8 trained on labels for ${epochs} epochs on the first ${limit} training images (seed ${seed}).
Both pipelines fine-tune 2 epochs with CE + KD from it (the pipeline's defaults) on their kernels'
grids and export int8 ONNX (portable target). Test top-1 on the 10,000 test images, in parentheses
the change from the fp32 model; packed: the kernels' bytes at the chosen widths (the int8 file on
disk is the same size for both: each value is stored in int8).

| model | tfjs top-1 (Δ pp) | onnxruntime int8 top-1 (Δ pp) | kernels packed (of 8-bit) | bits per layer |
| --- | ---: | ---: | ---: | --- |
${rows.map(line).join('\n')}
`;
writeFileAtomic(join(root, 'bench/results/mixed-precision-fashion-mnist.md'), text);
process.stdout.write(text);
