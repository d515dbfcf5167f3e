/**
 * A quantized teacher as the supervision source: a model exported as a static int8 QDQ ONNX file
 * (Retort's own exporter, the portable target) serves as an `onnx` teacher in onnxruntime; its
 * logits are the int8 model's (close to, not equal to, the fp32 model's), and a KD run caches and
 * learns from them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../src/config/experiment.js';
import { buildData } from '../../src/data/build.js';
import type { BatchLoader } from '../../src/data/loader.js';
import { calibrateRanges, exportOnnx } from '../../src/export/onnx.js';
import { buildModel } from '../../src/models/index.js';
import { runExperiment } from '../../src/run/experiment.js';
import { loadTeacherSource } from '../../src/teachers/load.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-int8-teacher-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('int8 ONNX teacher', () => {
  it('gives the int8 logits (near the fp32 ones), which KD caches and learns from', async () => {
    await tf.setBackend('native');
    const dataCfg = { dataset: 'fashion-mnist', batchSize: 32, trainLimit: 256, testLimit: 64 };
    const data = buildData(experimentSchema.shape.data.parse(dataCfg), 1);
    const model = buildModel('lightnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 5 });
    const calib = [...(data.trainPlain as BatchLoader).epoch()]
      .slice(0, 4)
      .map((b) => tf.tensor4d(b.x, [b.n, 28, 28, 1]));
    const file = join(scratch, 'teacher.int8.onnx');
    writeFileSync(file, exportOnnx(model, { quant: calibrateRanges(model, calib) }));
    const src = experimentSchema.shape.teacher.unwrap().parse({ onnx: file, layout: 'nhwc' });
    const teacher = await loadTeacherSource(src, data);
    const batch = (data.trainPlain as BatchLoader).epoch().next().value!;
    const x = tf.tensor4d(batch.x, [batch.n, 28, 28, 1]);
    const int8 = (await teacher.tap([]).run(x)).logits;
    const fp32 = model.predict(x) as tf.Tensor2D;
    const diff = tf.max(tf.abs(tf.sub(int8, fp32))).dataSync()[0]!;
    const scale = tf.max(tf.abs(fp32)).dataSync()[0]!;
    assert.ok(diff > 1e-5, `the teacher is quantized: max |int8 - fp32| = ${diff}`);
    assert.ok(diff < 0.1 * scale, `and close to fp32: ${diff} of ${scale}`);
    const agree = tf.sum(tf.cast(tf.equal(tf.argMax(int8, 1), tf.argMax(fp32, 1)), 'int32')).dataSync()[0]!;
    assert.ok(agree >= 0.9 * batch.n, `top-1 agrees on ${agree}/${batch.n}`);

    const lines: string[] = [];
    const r = await runExperiment(
      experimentSchema.parse({
        name: 'kd-from-int8',
        data: dataCfg,
        model: { name: 'mlp', options: { hidden: 16 } },
        teacher: { onnx: file, layout: 'nhwc' },
        losses: [
          { name: 'ce', weight: 0.5 },
          { name: 'kd', weight: 0.5, T: 2 },
        ],
        optimizer: { name: 'adam', lr: 0.003 },
        epochs: 1,
      }),
      'k.yaml',
      { runsRoot: scratch, log: (l) => lines.push(l) },
    );
    assert.ok(r.epochs[0]!.terms['kd']! > 0);
    const cached = lines.find((l) => l.startsWith('teacher logits cached in '))!.slice(25);
    const c = loadCheckpoint(cached).values.get('logits')!;
    const want = int8.dataSync();
    for (let i = 0; i < want.length; i++)
      assert.ok(Math.abs(c.data[i]! - want[i]!) < 1e-5, `cached logit ${i}: ${c.data[i]} vs ${want[i]}`);
    assert.ok(readFileSync(file).length > 0);
    teacher.dispose();
  });
});
