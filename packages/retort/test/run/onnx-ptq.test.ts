/**
 * `quantize: { direct: true }` of retort compress (run/onnx-ptq.ts): the PyTorch ResNet-20's ONNX
 * file quantized as it is, then run beside the original in onnxruntime; and the refusals of the
 * option where it cannot apply.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import 'retort-kd-native';
import { pipelineSchema } from '../../src/run/compress.js';
import { pipelineData } from '../../src/run/compress-inputs.js';
import { runOnnxPtq } from '../../src/run/onnx-ptq.js';

const here = dirname(fileURLToPath(import.meta.url));
const ONNX = join(here, '..', 'fixtures', 'onnx-teacher', 'resnet20-fmnist.onnx');
const scratch = mkdtempSync(join(tmpdir(), 'retort-onnx-ptq-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const base = {
  name: 'ptq',
  model: { onnx: ONNX, layout: 'nchw', mean: [0.286], std: [0.353] },
  data: { dataset: 'fashion-mnist', batchSize: 64, trainLimit: 512, testLimit: 1000 },
  quantize: { mode: 'ptq', direct: true, calibBatches: 4 },
  export: ['onnx-int8'],
};

describe('direct post-training int8 of an ONNX file', () => {
  it('PyTorch ResNet-20: an int8 file 0.3x the size that agrees with the original on >= 99%', async () => {
    const cfg = pipelineSchema.parse(base);
    const dir = join(scratch, 'ptq');
    const r = await runOnnxPtq(cfg, await pipelineData(cfg), dir, () => {});
    // 20 convs and the classifier (the stem conv stays float).
    assert.equal(r.nodes, 21);
    assert.ok(r.agreement >= 99, `agreement ${r.agreement}%`);
    assert.ok(Math.abs(r.int8.top1 - r.fp32.top1) <= 1, `${r.int8.top1} vs ${r.fp32.top1}`);
    // PyTorch measured 92.10% on all 10,000 test images.
    assert.ok(
      r.fp32.top1 > 88,
      `the original ${r.fp32.top1}%: is the data normalized as the model was trained?`,
    );
    assert.ok(r.int8.bytes < 0.35 * r.fp32.bytes);
    assert.ok(existsSync(join(dir, 'export', 'model.int8.onnx')));
    const saved = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as {
      files: { bytes: number }[];
    };
    assert.equal(saved.files[0]!.bytes, r.int8.bytes);
  });

  it('is refused where the file cannot be quantized as it is, saying what it needs', () => {
    const issue = (raw: object) => {
      const r = pipelineSchema.safeParse(raw);
      assert.ok(!r.success);
      return r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    };
    assert.match(
      issue({ ...base, prune: { kind: 'structured', fraction: 0.5 }, export: ['onnx-int8', 'rtz'] }),
      /quantize\.direct: quantizes the ONNX file as it is, so it needs no prune, lowrank or cluster stage, export \[onnx-int8\] only/,
    );
    assert.match(
      issue({ ...base, quantize: { mode: 'qat', direct: true } }),
      /quantize\.direct: .*needs quantize\.mode ptq/,
    );
    assert.match(
      issue({ ...base, model: { tfjs: 'model.json', mean: [0], std: [1] } }),
      /quantize\.direct: .*needs model\.onnx/,
    );
  });
});
