/**
 * Int8 inference latency in onnxruntime: fp32 vs static int8 (QDQ) vs dynamic int8 exports of the
 * zoo's ResNet-8 and LightNN on Fashion-MNIST-sized input (28x28x1), at batch 1 and 64, 1 and 2
 * intra-op threads, for each int8 target (portable: 7-bit weights, right on every x86-64; vnni:
 * full 8-bit weights). All exports of a model are timed interleaved in one process
 * (measureOrtLatencies: rounds alternate the order, one live session at a time). The static export's
 * optimized graph (onnxruntime, all optimizations) is read back to count what ran as integer
 * kernels (QLinearConv, QGemm, QLinearAdd, ...) and what stayed float (Conv, Gemm, MatMul).
 *
 *   npm run bench:int8-latency [-- --rounds N --repeats N --models resnet8,lightnn]
 *
 * Weights are seeded random, activation ranges calibrated on 4 batches of N(0, 1) input: latency does
 * not depend on the values. Table on stdout, JSON in bench/out/int8-latency.json.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import {
  buildModel,
  calibrateRanges,
  exportOnnx,
  type Int8Target,
  measureOrtLatencies,
  writeFileAtomic,
} from 'retort-kd';
import { describeCpu } from 'retort-kd-native';

const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : def;
};
const rounds = Number(arg('rounds', '5'));
const repeats = Number(arg('repeats', '10'));
const models = arg('models', 'resnet8,lightnn').split(',');
const shape = [28, 28, 1] as const;
const log = (s: string) => process.stderr.write(`${s}\n`);

/** Op counts of onnxruntime's optimized graph of `bytes` (all optimizations, 1 thread). */
async function optimizedOps(bytes: Uint8Array): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'retort-int8-'));
  try {
    const path = join(dir, 'opt.onnx');
    const s = await ort.InferenceSession.create(bytes, {
      graphOptimizationLevel: 'all',
      optimizedModelFilePath: path,
      intraOpNumThreads: 1,
    });
    await s.release();
    const m = onnxProto.onnx.ModelProto.decode(readFileSync(path));
    const counts: Record<string, number> = {};
    for (const n of m.graph?.node ?? []) counts[n.opType!] = (counts[n.opType!] ?? 0) + 1;
    return counts;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const INTEGER = [
  'QLinearConv',
  'QGemm',
  'QLinearAdd',
  'QLinearGlobalAveragePool',
  'QLinearMatMul',
  'MatMulIntegerToFloat',
  'DynamicQuantizeMatMul',
  'ConvInteger',
  'MatMulInteger',
];
const FLOAT = ['Conv', 'FusedConv', 'Gemm', 'MatMul', 'FusedMatMul'];
const pick = (c: Record<string, number>, names: readonly string[]) =>
  names
    .filter((n) => c[n])
    .map((n) => `${n} ${c[n]}`)
    .join(', ') || 'none';

interface Row {
  model: string;
  threads: number;
  batch: number;
  fp32: number;
  exports: { label: string; ms: number; ratio: number }[];
}

async function main(): Promise<void> {
  await tf.setBackend('native');
  const rows: Row[] = [];
  const graphs: Record<string, Record<string, string>> = {};
  for (const name of models) {
    const model = buildModel(name, { inputShape: [...shape], numClasses: 10, seed: 1 });
    const calib = Array.from({ length: 4 }, (_, i) =>
      tf.randomNormal([64, ...shape], 0, 1, 'float32', 10 + i),
    );
    const quant = calibrateRanges(model, calib);
    tf.dispose(calib);
    const exports: { label: string; bytes: Uint8Array }[] = [{ label: 'fp32', bytes: exportOnnx(model) }];
    for (const target of ['portable', 'vnni'] as Int8Target[]) {
      exports.push({ label: `static ${target}`, bytes: exportOnnx(model, { quant, target }) });
      exports.push({ label: `dynamic ${target}`, bytes: exportOnnx(model, { dynamic: true, target }) });
    }
    graphs[name] = {};
    for (const e of exports.slice(1)) {
      const ops = await optimizedOps(e.bytes);
      graphs[name]![e.label] = `integer: ${pick(ops, INTEGER)}; float: ${pick(ops, FLOAT)}`;
      log(`${name} ${e.label}: ${graphs[name]![e.label]}`);
    }
    for (const threads of [1, 2]) {
      for (const batch of [1, 64]) {
        const lat = await measureOrtLatencies(
          exports.map((e) => e.bytes),
          shape,
          batch,
          { rounds, repeats, warmup: 3, threads },
        );
        const fp32 = lat[0]!.medianMs;
        const row: Row = {
          model: name,
          threads,
          batch,
          fp32,
          exports: exports.slice(1).map((e, i) => ({
            label: e.label,
            ms: lat[i + 1]!.medianMs,
            ratio: lat[i + 1]!.medianMs / fp32,
          })),
        };
        rows.push(row);
        log(
          `${name} threads ${threads} batch ${batch}: fp32 ${fp32.toFixed(3)} ms; ${row.exports.map((e) => `${e.label} ${e.ms.toFixed(3)} (${e.ratio.toFixed(2)})`).join(', ')}`,
        );
      }
    }
    model.dispose();
  }
  const labels = rows[0]!.exports.map((e) => e.label);
  const head = ['model', 'threads', 'batch', 'fp32 ms', ...labels.map((l) => `${l} ms (int8/fp32)`)];
  const body = rows.map((r) => [
    r.model,
    String(r.threads),
    String(r.batch),
    r.fp32.toFixed(3),
    ...r.exports.map((e) => `${e.ms.toFixed(3)} (${e.ratio.toFixed(2)})`),
  ]);
  const line = (c: readonly string[]) => `| ${c.join(' | ')} |`;
  process.stdout.write(
    `CPU: ${describeCpu()}; onnxruntime-node ${ort.env.versions.common}; input ${shape.join('x')}; median of ${rounds} rounds x ${repeats} runs\n\n` +
      [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n') +
      '\n\nOptimized graphs (onnxruntime, all optimizations):\n' +
      Object.entries(graphs)
        .flatMap(([m, g]) => Object.entries(g).map(([l, d]) => `- ${m} ${l}: ${d}`))
        .join('\n') +
      '\n',
  );
  const out = fileURLToPath(new URL('./out/int8-latency.json', import.meta.url));
  writeFileAtomic(out, `${JSON.stringify({ cpu: describeCpu(), rows, graphs }, null, 2)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:int8-latency: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
