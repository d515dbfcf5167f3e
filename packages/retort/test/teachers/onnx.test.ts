/**
 * Bring your own teacher: a ResNet-20 trained in PyTorch and exported with torch.onnx.export
 * (fixtures/onnx-teacher/, made by fixtures/make_onnx_teacher.py), run in onnxruntime through the
 * teacher interface: logits equal PyTorch's, intermediate tensors tapped by name (NCHW maps arrive
 * NHWC), feature losses (AT, FitNet) trained from them, outputs cached; and the refusals.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../src/config/experiment.js';
import { buildData } from '../../src/data/build.js';
import { buildOfflineTask, parseTerms } from '../../src/distill/schemes/offline.js';
import { buildModel } from '../../src/models/index.js';
import { runExperiment } from '../../src/run/experiment.js';
import { loadTeacherSource } from '../../src/teachers/load.js';
import { onnxTeacher } from '../../src/teachers/onnx.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixture = join(here, '..', 'fixtures', 'onnx-teacher');
const ONNX = join(fixture, 'resnet20-fmnist.onnx');
const meta = JSON.parse(readFileSync(join(fixture, 'resnet20-fmnist.json'), 'utf8')) as {
  mean: number[];
  std: number[];
  test_top1: number;
  taps: Record<string, string>;
  first16_logits: number[];
};
const scratch = mkdtempSync(join(tmpdir(), 'retort-onnx-teacher-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

// The student's data: its own normalization (mean/std of these 512 training images), not PyTorch's.
const dataCfg = { dataset: 'fashion-mnist' as const, batchSize: 16, trainLimit: 512, testLimit: 64 };
const teacherCfg = { onnx: ONNX, layout: 'nchw' as const, mean: meta.mean, std: meta.std, taps: meta.taps };

describe('ONNX teacher from PyTorch', () => {
  it("gives PyTorch's logits (<= 1e-4) on the student's batches, whatever the data's normalization", async () => {
    await tf.setBackend('native');
    const data = buildData(experimentSchema.shape.data.parse(dataCfg), 1);
    assert.notEqual(data.mean[0], meta.mean[0], 'the test must exercise the renormalization');
    const teacher = await loadTeacherSource(experimentSchema.shape.teacher.unwrap().parse(teacherCfg), data);
    assert.equal(teacher.numClasses, 10);
    // PyTorch's 272,186 parameters less the BN layers the exporter folded into conv weights and biases.
    assert.equal(teacher.params, 271402);
    const batch = data.test.epoch().next().value!;
    const x = tf.tensor4d(batch.x, [batch.n, 28, 28, 1]);
    const r = await teacher.tap([]).run(x);
    const got = r.logits.dataSync();
    let worst = 0;
    for (let i = 0; i < 16 * 10; i++) worst = Math.max(worst, Math.abs(got[i]! - meta.first16_logits[i]!));
    assert.ok(worst <= 1e-4, `max |onnxruntime - PyTorch| = ${worst}`);
    if (process.env['RETORT_SHOW'] === '1')
      console.log(`max |onnxruntime - PyTorch| over 16 x 10 logits: ${worst}`);
    tf.dispose([x, r.logits]);
    teacher.dispose();
  });

  it('taps intermediate tensors by name or alias, NHWC, consistent with each other', async () => {
    await tf.setBackend('native');
    const data = buildData(experimentSchema.shape.data.parse(dataCfg), 1);
    const taps = ['stage2', 'stage3', meta.taps['pooled']!];
    const teacher = await onnxTeacher(
      { path: ONNX, layout: 'nchw', mean: meta.mean, std: meta.std, taps: meta.taps },
      data,
      taps,
    );
    const view = teacher.tap(taps);
    assert.deepEqual(view.shapes, [[14, 14, 32], [7, 7, 64], [64]]);
    const batch = data.test.epoch().next().value!;
    const x = tf.tensor4d(batch.x, [batch.n, 28, 28, 1]);
    const r = await view.run(x);
    assert.deepEqual(r.features[1]!.shape, [batch.n, 7, 7, 64]);
    // The pooled vector is the mean of the last stage over H and W: only true if the NCHW map was
    // transposed to NHWC correctly.
    const gap = tf.mean(r.features[1]!, [1, 2]);
    const diff = tf.max(tf.abs(tf.sub(gap, r.features[2]!))).dataSync()[0]!;
    assert.ok(diff <= 1e-5, `GAP(stage3) vs pooled: ${diff}`);
    assert.ok(tf.min(r.features[0]!).dataSync()[0]! >= 0, 'post-ReLU maps are non-negative');
    tf.dispose([x, r.logits, ...r.features, gap]);
    // Aliases are bound at load; another tensor of the graph needs naming then.
    assert.throws(
      () => teacher.tap(['/layer1/layer1.0/Relu_output_0']),
      /was not bound when the ONNX teacher was loaded/,
    );
    teacher.dispose();
  });

  it('AT and FitNet train a student from its taps (live and from the cache)', async () => {
    await tf.setBackend('native');
    const exp = experimentSchema.parse({
      name: 'onnx-at-fitnet',
      seed: 1,
      data: { ...dataCfg, batchSize: 64, trainLimit: 256 },
      model: { name: 'resnet8' },
      teacher: teacherCfg,
      losses: [
        { name: 'ce', weight: 1 },
        {
          name: 'at',
          weight: 1000,
          taps: {
            student: {
              stage1: 'layer1.0.relu_out',
              stage2: 'layer2.0.relu_out',
              stage3: 'layer3.0.relu_out',
            },
            teacher: { stage1: 'stage1', stage2: 'stage2', stage3: 'stage3' },
          },
        },
        {
          name: 'fitnet',
          weight: 100,
          taps: { student: { hint: 'layer2.0.relu_out' }, teacher: { hint: 'stage2' } },
        },
      ],
      optimizer: { name: 'sgd', lr: 0.05 },
      epochs: 2,
    });
    const lines: string[] = [];
    const res = await runExperiment(exp, 'onnx-at-fitnet', { runsRoot: scratch, log: (l) => lines.push(l) });
    assert.ok(Number.isFinite(res.testTop1), lines.join('\n'));
    assert.match(lines.join('\n'), /teacher onnx .*resnet20-fmnist\.onnx: 271402 params, test top-1/);
    assert.match(lines.join('\n'), /teacher logits and features \(stage1, stage2, stage3\) cached in/);
    // Both feature terms fall: the student's maps move towards the ONNX teacher's.
    for (const term of ['at', 'fitnet']) {
      const v = res.epochs.map((e) => e.terms[term]!);
      assert.ok(v.every(Number.isFinite) && v[1]! < v[0]!, `${term}: ${v}`);
    }

    // One step from the live ONNX teacher equals one from its cache.
    const data = buildData(exp.data, 1);
    const teacher = await loadTeacherSource(exp.teacher!, data, { taps: ['stage1', 'stage2', 'stage3'] });
    const terms = parseTerms(exp.losses, 't');
    const student = buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10, seed: 4 });
    const task = buildOfflineTask({
      student,
      teacher,
      terms,
      data: { numExamples: 256, numClasses: 10, batchSize: 8, seed: 1 },
    });
    const b = data.trainPlain.epoch().next().value!;
    const input = {
      x: tf.tensor4d(b.x, [b.n, 28, 28, 1]),
      y: tf.tensor1d(Int32Array.from(b.y), 'int32'),
      index: b.index,
      epoch: 0,
    };
    await task.prepare!(input);
    const live = task.loss(input).terms;
    const values = Object.fromEntries(Object.entries(live).map(([k, v]) => [k, v.dataSync()[0]!]));
    task.release!();
    assert.ok(values['at']! > 0 && values['fitnet']! > 0, JSON.stringify(values));
    teacher.dispose();
  });

  it('refuses unknown tensors (listing candidates), wrong class counts, other files', async () => {
    await tf.setBackend('native');
    const data = buildData(experimentSchema.shape.data.parse(dataCfg), 1);
    await assert.rejects(
      onnxTeacher({ path: ONNX, layout: 'nchw' }, data, ['/layer9/Relu_output_0']),
      /tap '\/layer9\/Relu_output_0' is not a tensor of .*resnet20-fmnist\.onnx \(feature candidates: \/relu\/Relu_output_0, /,
    );
    const tenClasses = { ...data, numClasses: 7 };
    await assert.rejects(
      loadTeacherSource(
        experimentSchema.shape.teacher.unwrap().parse({ onnx: ONNX, layout: 'nchw' }),
        tenClasses,
      ),
      /teacher: onnx .* has 10 classes and the data 7/,
    );
    const junk = join(scratch, 'junk.onnx');
    writeFileSync(junk, 'not a model at all');
    await assert.rejects(
      onnxTeacher({ path: junk, layout: 'nchw' }, data, []),
      /junk\.onnx: not an ONNX model/,
    );
    await assert.rejects(
      onnxTeacher({ path: ONNX, layout: 'nhwc' }, data, []),
      /the teacher takes 28 channels and the data has 1/,
    );
    // Config-level refusals.
    const bad = experimentSchema.safeParse({
      name: 'x',
      model: { name: 'lightnn' },
      teacher: { onnx: ONNX },
    });
    assert.ok(!bad.success && /layout/.test(JSON.stringify(bad.error.issues)));
    const two = experimentSchema.safeParse({
      name: 'x',
      model: { name: 'lightnn' },
      teacher: { onnx: ONNX, layout: 'nchw', model: { name: 'resnet20' } },
    });
    assert.ok(!two.success && /exactly one of model/.test(JSON.stringify(two.error.issues)));
    // A copy elsewhere is a different file path but the same teacher: same cache identity.
    const copy = join(scratch, 'copy.onnx');
    copyFileSync(ONNX, copy);
    const a = await onnxTeacher({ path: ONNX, layout: 'nchw' }, data, []);
    const c = await onnxTeacher({ path: copy, layout: 'nchw' }, data, []);
    assert.equal(a.identity(), c.identity());
    const d = await onnxTeacher({ path: copy, layout: 'nchw', mean: [0.5], std: [0.5] }, data, []);
    assert.notEqual(d.identity(), a.identity(), 'preprocessing is part of the identity');
    for (const t of [a, c, d]) t.dispose();
  });
});
