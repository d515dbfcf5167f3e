/**
 * Paired views (cross-modal data): the view transforms, loaders that carry both views of the same
 * (augmented) samples, and a KD run whose student sees 7x7 images while the teacher sees 28x28.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrThrow } from '../../src/config/errors.js';
import { dataSchema, experimentSchema } from '../../src/config/experiment.js';
import { buildData } from '../../src/data/build.js';
import type { BatchLoader } from '../../src/data/loader.js';
import { applyView, viewShape } from '../../src/data/views.js';
import { sidecarFor } from '../../src/export/sidecar.js';
import { buildModel } from '../../src/models/index.js';
import { runExperiment } from '../../src/run/experiment.js';
import { loadCheckpoint, saveModelWeights } from '../../src/train/checkpoint.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-views-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('views', () => {
  it('downsample averages blocks; sobel is the gradient magnitude with zero padding; shapes checked', () => {
    // One 4x4 single-channel image, values 0..15 row-major.
    const img = Float32Array.from({ length: 16 }, (_, i) => i);
    assert.deepEqual(
      Array.from(applyView({ kind: 'downsample', factor: 2 }, img, 1, [4, 4, 1])),
      [2.5, 4.5, 10.5, 12.5],
    );
    const e = applyView({ kind: 'sobel' }, img, 1, [4, 4, 1]);
    // An interior pixel of a linear ramp (x + 4y): gx = 8 (1 per column, weights 1+2+1 on each
    // side), gy = 32; magnitude sqrt(8^2 + 32^2).
    assert.ok(Math.abs(e[5]! - Math.hypot(8, 32)) < 1e-4, `${e[5]}`);
    // A corner sees zeros outside: at (0, 0) gx = 2*1 + 1*5 = 7, gy = 2*4 + 1*5 = 13.
    assert.ok(Math.abs(e[0]! - Math.hypot(7, 13)) < 1e-4, `${e[0]}`);
    assert.deepEqual(viewShape({ kind: 'downsample', factor: 4 }, [28, 28, 1]), [7, 7, 1]);
    assert.throws(
      () => viewShape({ kind: 'downsample', factor: 3 }, [28, 28, 1], 'data.views.student'),
      /data\.views\.student: downsample by 3/,
    );
    assert.throws(
      () => parseOrThrow(dataSchema, { views: { student: { kind: 'blur' } } }, 'x.yaml'),
      /views/,
    );
  });

  it('loaders carry the student view as x and the teacher view as teacherX of the same augmented samples', () => {
    const cfg = parseOrThrow(
      dataSchema,
      {
        trainLimit: 64,
        testLimit: 32,
        batchSize: 16,
        cropPadding: 2,
        hflip: true,
        views: { student: { kind: 'downsample', factor: 4 } },
      },
      'x.yaml',
    );
    const data = buildData(cfg, 1);
    assert.deepEqual(data.shape, [7, 7, 1]);
    assert.deepEqual(data.teacherShape, [28, 28, 1]);
    const b = (data.train as BatchLoader).epoch().next().value!;
    assert.equal(b.x.length, 16 * 49);
    assert.equal(b.teacherX!.length, 16 * 784);
    // x is exactly the teacher's (augmented) image downsampled: both views of one draw.
    assert.deepEqual(b.x, applyView({ kind: 'downsample', factor: 4 }, b.teacherX!, 16, [28, 28, 1]));
    const plain = buildData({ ...cfg, views: undefined }, 1);
    assert.notEqual(plain.key, data.key, 'views enter the cache key');
    // An exported student takes its view: the sidecar says which.
    const side = sidecarFor('onnx', 'm.onnx', data);
    assert.deepEqual(side.input.shape, [7, 7, 1]);
    assert.match(side.input.formula, /mean of z over the 4x4 block .* on the 28x28 image/);
    assert.equal(plain.inputFormula, undefined);
  });
});

describe('cross-modal KD run', () => {
  it('the student is built for and evaluated on its view; the teacher runs (and is cached) on its own', async () => {
    await tf.setBackend('native');
    const ckpt = join(scratch, 't.ckpt');
    const tmodel = buildModel('lightnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 2 });
    saveModelWeights(ckpt, tmodel, {});
    const lines: string[] = [];
    const r = await runExperiment(
      experimentSchema.parse({
        name: 'xmodal',
        data: {
          trainLimit: 128,
          testLimit: 64,
          batchSize: 32,
          views: { student: { kind: 'downsample', factor: 4 } },
        },
        model: { name: 'mlp', options: { hidden: 16 } },
        teacher: { model: { name: 'lightnn' }, checkpoint: ckpt },
        losses: [
          { name: 'ce', weight: 0.5 },
          { name: 'kd', weight: 0.5, T: 2 },
        ],
        optimizer: { name: 'adam', lr: 0.003 },
        epochs: 1,
      }),
      'x.yaml',
      { runsRoot: scratch, log: (l) => lines.push(l) },
    );
    assert.equal(r.params, 49 * 16 + 16 + 16 * 10 + 10, 'an MLP over 7x7 inputs');
    const cached = lines.find((l) => l.startsWith('teacher logits cached in '))!.slice(25);
    const c = loadCheckpoint(cached).values.get('logits')!;
    const data = buildData(
      parseOrThrow(dataSchema, { trainLimit: 128, testLimit: 64, batchSize: 32 }, 'x.yaml'),
      0,
    );
    const first = (data.trainPlain as BatchLoader).epoch().next().value!;
    const want = (tmodel.predict(tf.tensor4d(first.x, [first.n, 28, 28, 1])) as tf.Tensor).dataSync();
    for (let i = 0; i < 10 * first.n; i++)
      assert.ok(
        Math.abs(c.data[i]! - want[i]!) < 1e-4,
        `teacher logit ${i} on the full image: ${c.data[i]} vs ${want[i]}`,
      );
  });

  it('schemes whose students become teachers refuse views', async () => {
    await assert.rejects(
      runExperiment(
        experimentSchema.parse({
          name: 'xmodal-ban',
          data: { trainLimit: 64, testLimit: 32, views: { student: { kind: 'sobel' } } },
          model: { name: 'mlp' },
          scheme: { name: 'born-again' },
          losses: [{ name: 'kd' }],
          epochs: 1,
        }),
        'x.yaml',
        { runsRoot: scratch, log: () => {} },
      ),
      /scheme born-again does not take data.views/,
    );
  });
});
