/**
 * `npm run bench:compress`: every compression technique on the distilled Fashion-MNIST student
 * (the seed-1 KD ResNet-8 of bench:accuracy, trained here or reused), one pipeline run per row
 * (compress/pipeline.ts), each from the same uncompressed student and fine-tuned with CE + KD
 * from it for the same number of epochs. Writes bench/results/compress-fashion-mnist.md.
 *
 *   npm run bench:compress -- [--epochs 5] [--runs runs] [--rows baseline,unstructured-80,...]
 *                             [--latency-only] [--threads N]
 *
 * Accuracy is onnxruntime's on the 10,000 test images for every row (each row exports ONNX and
 * runs it). Latency is onnxruntime's median at batch 1 and 64, every row's exports timed together
 * and interleaved after all rows ran (measure/latency.ts measureOrtLatencies; --latency-only
 * repeats just that on the saved exports, --threads sets onnxruntime's intra-op threads); int8
 * rows also export their own fp32 model so the int8 / fp32 ratio compares the same weights.
 */
import 'retort-kd-native';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type FileSize,
  loadRun,
  measureOrtLatencies,
  type PipelineConfig,
  pipelineSchema,
  readConfigFile,
  rowArgmax,
  runPipeline,
  type StageReport,
  writeFileAtomic,
} from 'retort-kd';
import { argOf, runOrReuse } from './lib/runs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const epochs = Number(argOf(args, 'epochs', '5'));
const runs = argOf(args, 'runs', 'runs');
const cfgDir = join(root, 'configs/fashion-mnist');

type Row = {
  key: string;
  label: string;
  cfg: Record<string, unknown>;
};
// Every row also writes the fp32 tfjs weights (the dense reference size) and a .rtz bundle (its
// weights in their smallest exact encoding): the size columns are those files on disk.
const onnx = ['onnx', 'tfjs', 'rtz'];
const int8 = ['onnx', 'onnx-int8', 'tfjs', 'rtz'];
const ROWS: Row[] = [
  { key: 'baseline', label: 'baseline (fp32)', cfg: { finetune: { epochs: 0 }, export: onnx } },
  ...[0.5, 0.8, 0.9].map(
    (s): Row => ({
      key: `unstructured-${s * 100}`,
      label: `unstructured ${s * 100}% (global magnitude, AGP)`,
      cfg: { prune: { kind: 'unstructured', sparsity: s, scope: 'global', schedule: 'agp' }, export: onnx },
    }),
  ),
  ...[0.3, 0.5].map(
    (f): Row => ({
      key: `structured-${f * 100}`,
      label: `structured ${f * 100}% channels (L1)`,
      cfg: { prune: { kind: 'structured', fraction: f, criterion: 'l1' }, export: onnx },
    }),
  ),
  {
    key: 'structured-30-r8',
    label: 'structured 30% channels (L1), kept counts rounded to 8',
    cfg: { prune: { kind: 'structured', fraction: 0.3, criterion: 'l1', roundTo: 8 }, export: onnx },
  },
  ...(['per-tensor', 'per-channel'] as const).map(
    (w): Row => ({
      key: `ptq-${w}`,
      label: `PTQ int8, weights ${w}`,
      cfg: { finetune: { epochs: 0 }, quantize: { mode: 'ptq', weights: w }, export: int8 },
    }),
  ),
  {
    key: 'ptq-dynamic',
    label: 'PTQ dynamic int8 (int8 weights, activations quantized per run)',
    cfg: { finetune: { epochs: 0 }, export: ['onnx', 'onnx-int8-dynamic', 'tfjs', 'rtz'] },
  },
  {
    key: 'qat',
    label: 'QAT int8 (weights, KD)',
    cfg: { quantize: { mode: 'qat' }, export: int8 },
  },
  {
    key: 'lowrank',
    label: 'low-rank SVD (half the weights per layer)',
    cfg: { lowrank: { rank: { sizeFraction: 0.5 } }, export: onnx },
  },
  ...[16, 256].map(
    (k): Row => ({
      key: `kmeans-${k}`,
      label: `k-means ${k} clusters per layer`,
      cfg: { cluster: { clusters: k }, export: onnx },
    }),
  ),
  {
    key: 'deep-compression',
    label: 'unstructured 80% + k-means 16 on the non-zeros (Deep Compression order)',
    cfg: {
      prune: { kind: 'unstructured', sparsity: 0.8, scope: 'global', schedule: 'agp' },
      cluster: { clusters: 16 },
      export: onnx,
    },
  },
  {
    key: 'fp16',
    label: 'fp16 weights (ONNX fp16 initializers cast to float; tfjs float16)',
    cfg: { finetune: { epochs: 0 }, export: ['onnx', 'onnx-fp16', 'tfjs-fp16', 'rtz'] },
  },
  {
    key: 'lottery-80',
    label: 'lottery ticket 80% (IMP: 60% then 80%, rewound to the student each round, KD)',
    cfg: { lottery: { rate: 0.6, sparsity: 0.8, rewind: 'start', control: 'none' }, export: onnx },
  },
  {
    key: 'rigl-90',
    label: 'RigL 90% (sparse from the first step, ERK, KD)',
    cfg: { rigl: { sparsity: 0.9, reinit: false }, export: onnx },
  },
  {
    key: 'tucker',
    label: 'Tucker-2 conv kernels (half the weights per layer)',
    cfg: { tucker: { rank: { sizeFraction: 0.5 } }, export: onnx },
  },
  {
    key: 'hash-8',
    label: 'HashedNets, every conv and dense kernel of 1,000+ weights 8x fewer stored weights',
    // layers 'all': ResNet-8's one dense layer (640 weights) is below minWeights.
    cfg: { hash: { factor: 8, layers: 'all' }, export: onnx },
  },
  {
    key: 'mixed-precision',
    label: 'mixed precision 8/6/4-bit weights, 75% of the 8-bit bytes (sensitivity scan + QAT)',
    cfg: { mixedPrecision: { bits: [8, 6, 4], budget: { fractionOf8bit: 0.75 } }, export: int8 },
  },
  {
    key: 'combined',
    label: 'combined: unstructured 80% + QAT int8 (configs/fashion-mnist/compress/resnet8-kd.yaml)',
    cfg: {
      ...(readConfigFile(join(cfgDir, 'compress/resnet8-kd.yaml')) as Record<string, unknown>),
      export: int8,
    },
  },
];
const only = argOf(args, 'rows', '');
const latencyOnly = args.includes('--latency-only');
const ortThreads = Number(argOf(args, 'threads', '0'));
const rows = only ? ROWS.filter((r) => only.split(',').includes(r.key)) : ROWS;
if (only && rows.length !== only.split(',').length)
  throw new Error(`bench:compress: --rows takes ${ROWS.map((r) => r.key).join(', ')}; got ${only}`);

const t0 = performance.now();
const teacher = await runOrReuse(join(cfgDir, 'baseline/resnet20.yaml'), [], runs);
const studentFile = join(cfgDir, 'kd/resnet8-from-resnet20.yaml');
const student = await runOrReuse(
  studentFile,
  ['seed=1', 'name=fmnist-resnet8-kd-s1', `teacher.run=${join(runs, teacher.name)}`],
  runs,
);
const studentRun = join(runs, 'fmnist-resnet8-kd-s1');

const rowDir = (row: Row) => join(runs, `bench-compress-${row.key}`);
if (!latencyOnly) {
  for (const row of rows) {
    const t = performance.now();
    const raw = {
      ...row.cfg,
      name: `bench-compress-${row.key}`,
      student: { run: studentRun },
      finetune: {
        ...((row.cfg['finetune'] as object | undefined) ?? {}),
        epochs: (row.cfg['finetune'] as { epochs?: number } | undefined)?.epochs ?? epochs,
      },
    };
    const cfg: PipelineConfig = pipelineSchema.parse(raw);
    const s = await loadRun(studentRun, 'bench:compress');
    const ref = await loadRun(studentRun, 'bench:compress');
    await runPipeline(cfg, { model: s.model, teacher: ref.model, data: s.data }, rowDir(row), (l) =>
      process.stderr.write(`[${row.key}] ${l}\n`),
    );
    writeFileAtomic(
      join(rowDir(row), 'bench.json'),
      `${JSON.stringify({ seconds: (performance.now() - t) / 1000 })}\n`,
    );
  }
}

// Latency: every row's ONNX files timed together, interleaved, in one measurement (so rows compare
// under the same load); --latency-only repeats just this part on a quiet machine.
const FILE: Record<string, string> = {
  onnx: 'model.onnx',
  'onnx-int8': 'model.int8.onnx',
  'onnx-int8-dynamic': 'model.int8-dynamic.onnx',
  'onnx-fp16': 'model.fp16.onnx',
};
const results = rows.map((row) => {
  const dir = rowDir(row);
  const file = join(dir, 'results.json');
  if (!existsSync(file))
    throw new Error(`bench:compress: ${file} not found (run without --latency-only first)`);
  const { stages, files = [] } = JSON.parse(readFileSync(file, 'utf8')) as {
    stages: StageReport[];
    files?: FileSize[];
  };
  const exported = stages.filter((r) => r.onnx);
  const final = exported.at(-1)!;
  const fp32 = exported.length > 1 ? exported[0]! : undefined;
  const bytesOf = (r: StageReport) => readFileSync(join(dir, 'export', FILE[r.onnx!.format]!));
  const secs = existsSync(join(dir, 'bench.json'))
    ? (JSON.parse(readFileSync(join(dir, 'bench.json'), 'utf8')) as { seconds: number }).seconds
    : Number.NaN;
  return {
    row,
    final,
    fp32,
    secs,
    onnx: { final: bytesOf(final), ...(fp32 ? { fp32: bytesOf(fp32) } : {}) },
    /** The exported files as measured by the pipeline (path relative to the row's folder). */
    file: (path: string) => files.find((f) => f.path === path),
  };
});
const models = results.flatMap((r) => (r.onnx.fp32 ? [r.onnx.final, r.onnx.fp32] : [r.onnx.final]));
const studentData = (await loadRun(studentRun, 'bench:compress')).data;
const shape = studentData.shape;

/** % of the test images on which two ONNX models' top-1 agree (onnxruntime both). */
async function ortAgreement(a: Uint8Array, b: Uint8Array): Promise<number> {
  const ort = await import('onnxruntime-node');
  const [sa, sb] = await Promise.all([ort.InferenceSession.create(a), ort.InferenceSession.create(b)]);
  const k = studentData.numClasses;
  let agree = 0;
  let n = 0;
  for await (const bt of studentData.test.epoch()) {
    const feed = { input: new ort.Tensor('float32', bt.x, [bt.n, ...shape]) };
    const ya = (await sa.run(feed))['output']!.data as Float32Array;
    const yb = (await sb.run(feed))['output']!.data as Float32Array;
    for (let i = 0; i < bt.n; i++) if (rowArgmax(ya, i, k) === rowArgmax(yb, i, k)) agree++;
    n += bt.n;
  }
  await Promise.all([sa.release(), sb.release()]);
  return (100 * agree) / n;
}
const timing = { rounds: 5, repeats: 10, warmup: 3, ...(ortThreads > 0 ? { threads: ortThreads } : {}) };
const b1 = await measureOrtLatencies(models, shape, 1, timing);
const b64 = await measureOrtLatencies(models, shape, 64, timing);
const lat = new Map(models.map((m, i) => [m, { b1: b1[i]!.medianMs, b64: b64[i]!.medianMs }]));
// After the timing, so that nothing of these sessions can disturb it.
const agreement = new Map<string, number>();
for (const r of results)
  if (r.onnx.fp32) agreement.set(r.row.key, await ortAgreement(r.onnx.final, r.onnx.fp32));
const wall = (performance.now() - t0) / 1000;
const base = results.find((r) => r.row.key === 'baseline');
const fmt = (x: number) => x.toLocaleString('en-US');
const kb = (b: number) => `${(b / 1024).toFixed(1)} KB`;
/** A measured file as 'raw KB (gzip KB)'; '?' where the row's results predate file measurement. */
const sizeOf = (r: (typeof results)[0], path: string) => {
  const f = r.file(path);
  return f ? `${kb(f.bytes)} (${kb(f.gzipBytes)})` : '?';
};
const onnxPath = (r: (typeof results)[0]) => `export/${FILE[r.final.onnx!.format]!}`;
const fp32Weights = base?.file('export/tfjs/group1-shard1of1.bin');
const lines = [
  '# Fashion-MNIST: compressing the distilled student',
  '',
  `Command: \`npm run bench:compress -- ${args.join(' ')}\` — wall time ${(wall / 60).toFixed(1)} min (a reused student run counts as 0).`,
  `Student: ${student.model} KD from ${teacher.model} (${studentRun}, ${student.testTop1.toFixed(2)}% test top-1 in tfjs). Every row starts from it; fine-tuning is ${epochs} epochs of CE + KD (T 4, weight 0.9) from the uncompressed student, SGD lr 0.01 cosine, except where the row says 0.`,
  `Top-1 is onnxruntime-node on the exported model (10,000 test images); latency is onnxruntime median (ms) at batch 1 and 64, all rows' exports timed together, interleaved (5 rounds x 10 runs each, ${ortThreads > 0 ? `${ortThreads} intra-op thread${ortThreads > 1 ? 's' : ''}` : "onnxruntime's default threads"}); "int8/fp32" is the row's int8 export against its own fp32 export at batch 64.`,
  '',
  `Sizes are the files each row wrote, measured on disk, raw (gzip -9): the .rtz bundle (every weight in its smallest exact encoding: k-means codebooks, sparse masks, int8 kernels, HashedNets buckets; loads back into the identical model) and the row's final ONNX file. The dense reference, the baseline's fp32 tfjs weights file, is ${fp32Weights ? `${kb(fp32Weights.bytes)} (${kb(fp32Weights.gzipBytes)})` : '?'}.`,
  '',
  '| technique | top-1 | Δ vs baseline | params | zero weights | .rtz bundle | ONNX file | MACs | ORT b1 ms | ORT b64 ms | int8/fp32 b64 | fine-tune epochs | time |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...results.map((r) => {
    const o = r.final.onnx!;
    const d = base ? o.top1 - base.final.onnx!.top1 : Number.NaN;
    const l = lat.get(r.onnx.final)!;
    const ratio = r.onnx.fp32 ? (l.b64 / lat.get(r.onnx.fp32)!.b64).toFixed(2) : '';
    const ft = (r.row.cfg['finetune'] as { epochs?: number } | undefined)?.epochs ?? epochs;
    return `| ${r.row.label} | ${o.top1.toFixed(2)}% | ${r.row.key === 'baseline' ? '' : `${d >= 0 ? '+' : ''}${d.toFixed(2)}`} | ${fmt(r.final.params)} | ${fmt(r.final.zeroWeights)} | ${sizeOf(r, 'export/model.rtz')} | ${sizeOf(r, onnxPath(r))} | ${fmt(r.final.macs)} | ${l.b1.toFixed(3)} | ${l.b64.toFixed(2)} | ${ratio} | ${ft} | ${r.secs.toFixed(0)} s |`;
  }),
  '',
  'Int8 rows, fp32 export of the same model: ' +
    results
      .filter((r) => r.fp32 && r.onnx.fp32)
      .map(
        (r) =>
          `${r.row.key} ${r.fp32!.onnx!.top1.toFixed(2)}% (int8 − fp32 ${(r.final.onnx!.top1 - r.fp32!.onnx!.top1).toFixed(2)} pp, top-1 agreement ${agreement.get(r.row.key)!.toFixed(2)}%), b64 ${lat.get(r.onnx.fp32!)!.b64.toFixed(2)} ms`,
      )
      .join('; '),
  '',
  `Per-stage tables: ${runs}/bench-compress-<row>/*.md.`,
  '',
];
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileAtomic(join(root, 'bench/results/compress-fashion-mnist.md'), lines.join('\n'));
console.log(lines.join('\n'));
