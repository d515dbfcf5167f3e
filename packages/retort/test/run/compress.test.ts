/**
 * The compression pipeline end to end on a slice of Fashion-MNIST: a briefly trained ResNet-8 run,
 * then unstructured pruning (fine-tuned with KD, masks kept) + PTQ + ONNX exports, and structured
 * pruning + QAT; each stage measured and written to the run folder.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import onnxProto from 'onnx-proto';
import { prunableKernels } from '../../src/compress/prune/magnitude.js';
import { experimentSchema } from '../../src/config/experiment.js';
import { buildData } from '../../src/data/build.js';
import { buildModel } from '../../src/models/index.js';
import { pipelineSchema, runPipeline, type StageReport } from '../../src/run/compress.js';
import { runExperiment } from '../../src/run/experiment.js';
import { loadModelWeights } from '../../src/train/checkpoint.js';

const { onnx } = onnxProto;
const scratch = mkdtempSync(join(tmpdir(), 'retort-pipeline-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
// Enough training that the student learns (about 75% in 2 epochs): an untrained one (10% = chance)
// has near-tie logits, and int8 agreement measured on it says nothing.
const data = { dataset: 'fashion-mnist', batchSize: 64, trainLimit: 2048, testLimit: 512 };

let runs = 0;
async function trainedRun() {
  await tf.setBackend('native');
  const exp = experimentSchema.parse({
    name: `student${runs++}`,
    seed: 1,
    model: { name: 'resnet8' },
    data,
    optimizer: { name: 'adam', lr: 0.003, weightDecay: 0 },
    epochs: 2,
  });
  const r = await runExperiment(exp, 'student.yaml', { runsRoot: scratch, log: () => {} });
  const d = buildData(exp.data, exp.seed);
  const load = () => {
    const m = buildModel('resnet8', { inputShape: d.shape, numClasses: d.numClasses });
    loadModelWeights(join(r.runDir, 'model.ckpt'), m);
    return m;
  };
  return { runDir: r.runDir, data: d, model: load(), teacher: load() };
}

describe('compression pipeline', () => {
  it('unstructured 50% + KD fine-tuning + PTQ + ONNX fp32/int8: sparsity kept, stages measured', async () => {
    const { runDir, data: d, model, teacher } = await trainedRun();
    const cfg = pipelineSchema.parse({
      name: 'p1',
      student: { run: runDir },
      finetune: { epochs: 1 },
      prune: { kind: 'unstructured', sparsity: 0.5, scope: 'layer' },
      quantize: { mode: 'ptq', calibBatches: 2, weights: 'per-tensor' },
      export: ['onnx', 'onnx-int8'],
      // A 72% student, per-tensor 7-bit weights: 97.7% measured on the 512 test images.
      check: { int8Agreement: 96 },
    });
    const out = join(scratch, 'p1');
    const reports = await runPipeline(cfg, { model, teacher, data: d }, out, () => {});
    assert.deepEqual(
      reports.map((r) => r.stage),
      ['baseline', 'prune', 'export-onnx', 'export-onnx-int8'],
    );
    for (const { kernel } of prunableKernels(model)) {
      const zeros = Array.from(kernel.dataSync()).filter((v) => v === 0).length;
      assert.equal(zeros, Math.floor(0.5 * kernel.size), 'masks survive fine-tuning');
    }
    const fp32 = reports[2]!.onnx!;
    const int8 = reports[3]!.onnx!;
    assert.ok(fp32.maxAbsDiff <= 1e-4 && fp32.agreement === 100, `fp32 ${fp32.maxAbsDiff} ${fp32.agreement}`);
    assert.ok(int8.agreement >= 96, `int8 agreement ${int8.agreement}`);
    assert.equal(int8.int8Target, 'portable', 'the default target is recorded');
    assert.equal(fp32.int8Target, undefined);
    assert.ok(Math.abs(fp32.top1 - reports[1]!.testTop1) < 1e-9, 'fp32 ONNX keeps the accuracy');
    assert.ok(int8.bytes < fp32.bytes / 2);
    assert.ok(existsSync(join(out, 'prune.md')) && existsSync(join(out, 'export', 'model.int8.onnx')));
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    assert.equal(results.stages.length, 4);
    // quantize.weights reached the exporter: every int8 weight has a single scale
    const g = onnx.ModelProto.decode(readFileSync(join(out, 'export', 'model.int8.onnx'))).graph!;
    const inits = new Map(g.initializer!.map((t) => [t.name!, t]));
    const int8Weights = g.node!.filter(
      (n) =>
        n.opType === 'DequantizeLinear' &&
        inits.get(n.input![0]!)?.dataType === onnx.TensorProto.DataType.INT8,
    );
    assert.ok(int8Weights.length > 0);
    for (const n of int8Weights) {
      const scale = inits.get(n.input![1]!)!;
      assert.equal(
        (scale.dims ?? []).reduce((a, b) => a * Number(b), 1),
        1,
        `${n.input![0]}: one scale`,
      );
    }
  });

  it('structured 50% + QAT: fewer parameters, a working int8 export', async () => {
    const { runDir, data: d, model, teacher } = await trainedRun();
    const cfg = pipelineSchema.parse({
      name: 'p2',
      student: { run: runDir },
      finetune: { epochs: 1 },
      prune: { kind: 'structured', fraction: 0.5 },
      quantize: { mode: 'qat', calibBatches: 2 },
      export: ['onnx-int8'],
      check: { int8Agreement: 97 }, // 98.4% measured
    });
    const reports = await runPipeline(cfg, { model, teacher, data: d }, join(scratch, 'p2'), () => {});
    assert.ok(reports[1]!.params < reports[0]!.params);
    assert.ok(reports[1]!.macs < reports[0]!.macs);
    // The int8 file is about as good as the pruned and fine-tuned model (68.9% vs 69.5% measured).
    assert.ok(
      Math.abs(reports[2]!.onnx!.top1 - reports[2]!.testTop1) <= 2,
      `int8 ${reports[2]!.onnx!.top1}% vs ${reports[2]!.testTop1}%`,
    );
  });

  it('low-rank + k-means stages: factorized and fine-tuned, then shared weights that stay shared', async () => {
    const { runDir, data: d, model, teacher } = await trainedRun();
    const cfg = pipelineSchema.parse({
      name: 'p3',
      student: { run: runDir },
      finetune: { epochs: 1 },
      lowrank: { rank: { sizeFraction: 0.5 } },
      cluster: { clusters: 16 },
      export: ['onnx', 'onnx-int8-dynamic'],
      check: { int8Agreement: 97 }, // 98.2% measured
    });
    const reports = await runPipeline(cfg, { model, teacher, data: d }, join(scratch, 'p3'), () => {});
    assert.deepEqual(
      reports.map((r) => r.stage),
      ['baseline', 'lowrank', 'cluster', 'export-onnx', 'export-onnx-int8-dynamic'],
    );
    assert.ok(reports[1]!.params < reports[0]!.params, 'factorized: fewer parameters');
    assert.ok(reports[1]!.macs < reports[0]!.macs, 'factorized: fewer MACs');
    const c = reports[2]!;
    assert.ok(c.bytes.clustered !== null && c.bytes.clustered < c.bytes.fp32 / 4, 'clustered bytes');
    assert.equal(reports[1]!.bytes.clustered, null);
    // the exported (fine-tuned) model still holds at most 16 values per kernel
    const exported = reports[3]!;
    assert.equal(exported.bytes.clustered, c.bytes.clustered);
    assert.ok(Math.abs(exported.onnx!.top1 - c.testTop1) < 1e-9, 'ONNX keeps the accuracy');
    const dyn = reports[4]!.onnx!;
    assert.ok(existsSync(join(scratch, 'p3', 'export', 'model.int8-dynamic.onnx')));
    // only the 1 x 1 factors and wide convs are quantized dynamically (export/onnx/dynamic.ts)
    assert.ok(
      dyn.bytes < exported.onnx!.bytes,
      `dynamic int8: ${dyn.bytes} B vs fp32 ${exported.onnx!.bytes} B`,
    );
    assert.ok(
      Math.abs(dyn.top1 - exported.onnx!.top1) <= 2, // 0.6 pp measured
      `dynamic int8 ${dyn.top1}% vs fp32 ${exported.onnx!.top1}%`,
    );
    const stats = JSON.parse(readFileSync(join(scratch, 'p3', 'results.json'), 'utf8'));
    assert.equal(stats.stages.length, 5);
  });

  it('unstructured 60% then k-means 8 (Deep Compression): the zeros survive clustering and its fine-tuning', async () => {
    const { runDir, data: d, model, teacher } = await trainedRun();
    const cfg = pipelineSchema.parse({
      name: 'p5',
      student: { run: runDir },
      finetune: { epochs: 1 },
      prune: { kind: 'unstructured', sparsity: 0.6, scope: 'layer' },
      cluster: { clusters: 8 },
      export: ['onnx'],
    });
    const reports = await runPipeline(cfg, { model, teacher, data: d }, join(scratch, 'p5'), () => {});
    assert.deepEqual(
      reports.map((r) => r.stage),
      ['baseline', 'prune', 'cluster', 'export-onnx'],
    );
    assert.equal(reports[2]!.zeroWeights, reports[1]!.zeroWeights, 'clustering keeps every pruned zero');
    for (const { kernel } of prunableKernels(model)) {
      const v = kernel.dataSync();
      assert.equal(Array.from(v).filter((x) => x === 0).length, Math.floor(0.6 * kernel.size));
      assert.ok(new Set(v).size <= 8, `${new Set(v).size} values`);
    }
  });

  it('refuses stage combinations that undo each other, saying why', async () => {
    const { runDir, data: d, model, teacher } = await trainedRun();
    const base = { name: 'p4', student: { run: runDir } };
    for (const [extra, why] of [
      [
        { prune: { kind: 'unstructured', sparsity: 0.5 }, lowrank: { rank: { energy: 0.9 } } },
        /lowrank after unstructured pruning/,
      ],
      [{ cluster: { clusters: 4 }, quantize: { mode: 'qat' } }, /quantize.mode qat would re-quantize/],
    ] as const) {
      const cfg = pipelineSchema.parse({ ...base, ...extra });
      await assert.rejects(
        runPipeline(cfg, { model, teacher, data: d }, join(scratch, 'p4'), () => {}),
        why,
      );
    }
  });

  it('an export that fails its check fails the run naming the file and key; the results stay', async () => {
    const { runDir, data: d, model, teacher } = await trainedRun();
    const cfg = pipelineSchema.parse({
      name: 'p6',
      student: { run: runDir },
      quantize: { mode: 'ptq', calibBatches: 1 },
      export: ['onnx', 'onnx-int8'],
      check: { int8Agreement: 100 },
    });
    const out = join(scratch, 'p6');
    await assert.rejects(
      runPipeline(cfg, { model, teacher, data: d }, out, () => {}),
      /compress 'p6': export check failed .*\n .*model\.int8\.onnx: top-1 agrees with the fp32 tfjs model on \d+\.\d+% of the test images \(check\.int8Agreement 100; int8 target portable\)/,
    );
    const kept = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { stages: StageReport[] };
    assert.equal(kept.stages.at(-1)!.stage, 'export-onnx-int8');
    assert.ok(existsSync(join(out, 'export', 'model.int8.onnx')));
    assert.throws(() => pipelineSchema.parse({ ...cfg, check: { int8Agreement: 101 } }));
    assert.throws(() => pipelineSchema.parse({ ...cfg, check: { int8: 99 } }));
  });

  it('the schema refuses unknown keys and a sparsity of 1', () => {
    assert.throws(() =>
      pipelineSchema.parse({
        name: 'x',
        student: { run: 'r' },
        prune: { kind: 'unstructured', sparsity: 1 },
      }),
    );
    assert.throws(() => pipelineSchema.parse({ name: 'x', student: { run: 'r' }, prunning: {} }));
  });
});
