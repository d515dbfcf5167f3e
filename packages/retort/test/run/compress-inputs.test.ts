/**
 * `retort compress` on a model the user already has: the ResNet-20 trained in PyTorch and exported
 * to ONNX (fixtures/onnx-teacher/) imported, structurally pruned, fine-tuned with KD from the
 * original, weight-QAT'd and exported in every format, each file measured on disk; and the config
 * errors of this path.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { prunableKernels } from '../../src/compress/prune/magnitude.js';
import { fakeQuantKernel } from '../../src/compress/quantize/qat.js';
import { loadBundle } from '../../src/export/rtz.js';
import { exportTfjs, loadTfjs, WEIGHTS_FILE } from '../../src/export/tfjs.js';
import type { FileSize } from '../../src/measure/files.js';
import { buildModel } from '../../src/models/index.js';
import { pipelineSchema, runPipeline, type StageReport } from '../../src/run/compress.js';
import { loadPipelineInputs } from '../../src/run/compress-inputs.js';

const here = dirname(fileURLToPath(import.meta.url));
const ONNX = join(here, '..', 'fixtures', 'onnx-teacher', 'resnet20-fmnist.onnx');
const scratch = mkdtempSync(join(tmpdir(), 'retort-compress-model-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const base = {
  name: 'byo',
  model: { onnx: ONNX, layout: 'nchw', mean: [0.286], std: [0.353] },
  data: { dataset: 'fashion-mnist', batchSize: 64, trainLimit: 512, testLimit: 256 },
};

describe('compressing a model you already have', () => {
  it('ONNX from PyTorch: imported at its accuracy, pruned + KD + QAT, every export measured and loadable', async () => {
    const cfg = pipelineSchema.parse({
      ...base,
      finetune: { epochs: 1, optimizer: { name: 'sgd', lr: 0.002, momentum: 0.9, nesterov: true } },
      prune: { kind: 'structured', fraction: 0.5, roundTo: 8 },
      quantize: { mode: 'qat', calibBatches: 2 },
      export: ['onnx', 'onnx-int8', 'tfjs', 'tfjs-uint8', 'rtz'],
      check: { int8Agreement: 90 },
    });
    const inputs = await loadPipelineInputs(cfg);
    // torch's export folded the BatchNorms: they are put back (identity until trained).
    assert.match(inputs.description, /^onnx .*resnet20-fmnist\.onnx; a BatchNorm restored after 21 convs/);
    // The model's own normalization became the data's.
    assert.deepEqual([...inputs.data.mean, ...inputs.data.std], [0.286, 0.353]);
    const out = join(scratch, 'byo');
    const reports = await runPipeline(cfg, inputs, out, () => {});
    // PyTorch measured 92.10% on all 10,000 test images; the first 256 here.
    assert.ok(reports[0]!.testTop1 >= 88, `imported model: ${reports[0]!.testTop1}%`);
    assert.ok(reports[1]!.params < 0.6 * reports[0]!.params);
    // The original agrees with itself; the compressed model (one epoch on 512 images: 63% measured) less.
    assert.equal(reports[0]!.originalAgreement, 100);
    const last = reports.at(-1)!;
    assert.ok(
      last.onnx!.originalAgreement! > 50 && last.onnx!.originalAgreement! < 100,
      `${last.onnx!.originalAgreement}`,
    );
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
      stages: StageReport[];
      files: FileSize[];
    };
    const byPath = new Map(results.files.map((f) => [f.path, f]));
    assert.deepEqual(
      [...byPath.keys()].sort(),
      [
        'export/model.int8.onnx',
        'export/model.onnx',
        'export/model.rtz',
        'export/tfjs-uint8/group1-shard1of1.bin',
        'export/tfjs-uint8/model.json',
        'export/tfjs/group1-shard1of1.bin',
        'export/tfjs/model.json',
      ].sort(),
    );
    for (const f of results.files) {
      const bytes = readFileSync(join(out, f.path));
      assert.equal(f.bytes, statSync(join(out, f.path)).size, f.path);
      assert.equal(f.gzipBytes, gzipSync(bytes, { level: 9 }).length, f.path);
    }
    assert.deepEqual(byPath.get('export/model.rtz')!.loadableBy, ['retort']);
    assert.deepEqual(byPath.get('export/model.int8.onnx')!.loadableBy, ['onnxruntime']);
    const fp32 = byPath.get(`export/tfjs/${WEIGHTS_FILE}`)!.bytes;
    // QAT leaves every kernel on a per-channel int8 grid: the bundle stores them as int8.
    assert.ok(byPath.get('export/model.rtz')!.bytes < 0.35 * fp32, 'rtz vs fp32 weights');
    assert.ok(Math.abs(byPath.get(`export/tfjs-uint8/${WEIGHTS_FILE}`)!.bytes - fp32 / 4) < 64);
    assert.match(
      readFileSync(join(out, 'files.md'), 'utf8'),
      /\| export\/model\.rtz \| rtz \| \d+ \| \d+ \|/,
    );
    // The bundle is the exported model with its kernels on the int8 export's grid (portable: 63).
    const x = tf.randomNormal([4, 28, 28, 1], 0, 1, 'float32', 5);
    const a = (await loadBundle(join(out, 'export', 'model.rtz'))).predict(x) as tf.Tensor;
    const fp32Model = await loadTfjs(join(out, 'export', 'tfjs'));
    const b0 = fp32Model.predict(x) as tf.Tensor;
    for (const { kernel } of prunableKernels(fp32Model)) kernel.assign(fakeQuantKernel(kernel, 63));
    const b = fp32Model.predict(x) as tf.Tensor;
    assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
    assert.notDeepEqual(Array.from(a.dataSync()), Array.from(b0.dataSync()));
    tf.dispose([x, a, b, b0]);
  });

  it('a tfjs layers model: loaded as it is, checked against the data, pruned and bundled sparse', async () => {
    await tf.setBackend('native');
    const dir = join(scratch, 'tfjs-model');
    await exportTfjs(buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10, seed: 1 }), dir);
    const cfg = pipelineSchema.parse({
      name: 'byo-tfjs',
      model: { tfjs: join(dir, 'model.json'), mean: [0.5], std: [0.5] },
      data: base.data,
      finetune: { epochs: 0 },
      prune: { kind: 'unstructured', sparsity: 0.8, schedule: 'agp' },
      export: ['tfjs', 'rtz'],
    });
    const inputs = await loadPipelineInputs(cfg);
    // The zoo's convs have their BNs: nothing to restore.
    assert.equal(inputs.description, `tfjs ${join(dir, 'model.json')}`);
    const out = join(scratch, 'byo-tfjs');
    const lines: string[] = [];
    const reports = await runPipeline(cfg, inputs, out, (l) => lines.push(l));
    // AGP with fewer than 2 epochs would leave the final pruning untrained: it prunes at once.
    assert.ok(lines.includes('prune: agp needs at least 2 fine-tuning epochs (0 given); pruning at once'));
    assert.ok(reports[1]!.zeroWeights > 0.75 * reports[1]!.params);
    const { files } = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { files: FileSize[] };
    const size = (p: string) => files.find((f) => f.path === p)!.bytes;
    assert.ok(size('export/model.rtz') < 0.35 * size(`export/tfjs/${WEIGHTS_FILE}`));
    const other = join(scratch, 'tfjs-rgb');
    await exportTfjs(buildModel('resnet8', { inputShape: [32, 32, 3], numClasses: 10 }), other);
    await assert.rejects(
      loadPipelineInputs(
        pipelineSchema.parse({ ...cfg, model: { ...cfg.model, tfjs: join(other, 'model.json') } }),
      ),
      /compress: .*tfjs-rgb\/model\.json takes \[32, 32, 3\] images, the data has \[28, 28, 1\]/,
    );
  });

  it('config errors name the key: model with student, model without data, two normalizations', async () => {
    const issue = (raw: object) => {
      const r = pipelineSchema.safeParse(raw);
      assert.ok(!r.success);
      return r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    };
    assert.match(
      issue({ ...base, student: { run: 'r' } }),
      /give exactly one of student .* or model .*; got both/,
    );
    assert.match(issue({ name: 'x', model: base.model }), /data: required with model/);
    assert.match(issue({ ...base, model: { onnx: ONNX } }), /model\.layout: required for an onnx model/);
    assert.match(issue({ ...base, model: { ...base.model, restoreBN: false } }), /Unrecognized key/);
    const asIs = await loadPipelineInputs(
      pipelineSchema.parse({ ...base, model: { ...base.model, restoreBatchNorm: false } }),
    );
    assert.ok(!asIs.model.layers.some((l) => l.getClassName() === 'BatchNormalization'));
    assert.match(
      issue({ ...base, model: { tfjs: 'm.json', layout: 'nchw' } }),
      /model\.layout: applies to onnx models only/,
    );
    assert.match(issue({ name: 'x', student: { run: 'r' }, data: base.data }), /data: applies to model only/);
    await assert.rejects(
      loadPipelineInputs(
        pipelineSchema.parse({ ...base, data: { ...base.data, normalize: { mean: [0.5], std: [0.5] } } }),
      ),
      /data\.normalize \(mean 0\.5, std 0\.5\) differs from model\.mean\/std \(0\.286, 0\.353\)/,
    );
    await assert.rejects(
      loadPipelineInputs(pipelineSchema.parse({ ...base, model: { onnx: ONNX, layout: 'nchw' } })),
      /say how .*resnet20-fmnist\.onnx normalizes its inputs: model\.mean and model\.std/,
    );
    const notOnnx = join(scratch, 'not.onnx');
    writeFileSync(notOnnx, 'hello');
    await assert.rejects(
      loadPipelineInputs(pipelineSchema.parse({ ...base, model: { ...base.model, onnx: notOnnx } })),
      /not\.onnx: (not an ONNX model|the file holds no graph)/,
    );
  });
});
