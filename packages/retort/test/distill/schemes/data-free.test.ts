/**
 * Data-free distillation (scheme data-free, DeepInversion): the pieces of the inversion loss, and a
 * run whose training split throws when read — so the student provably learns from synthesized
 * images only — that saves the images as IDX files and a PNG grid and resumes without synthesizing
 * again.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { PNG } from 'pngjs';
import { experimentSchema } from '../../../src/config/experiment.js';
import { loadIdxSplit } from '../../../src/data/fashion-mnist.js';
import { bnLayers, bnStatLoss, roll, tvLoss } from '../../../src/distill/schemes/data-free.js';
import { buildModel } from '../../../src/models/index.js';
import { runExperiment } from '../../../src/run/experiment.js';
import { loadCheckpoint, saveModelWeights } from '../../../src/train/checkpoint.js';
import { splitsWithoutTraining } from './helpers.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-df-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('data-free: the inversion loss', () => {
  it('bnStatLoss is sum_l |mean - running mean| + |var - running var|; tv and roll as defined', async () => {
    await tf.setBackend('native');
    const f = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 1, 2]);
    // Channel 0: 1, 3, 5, 7 (mean 4, var 5); channel 1: 2, 4, 6, 8 (mean 5, var 5).
    const stats = { mean: tf.tensor1d([4, 1]), variance: tf.tensor1d([1, 5]) };
    const got = bnStatLoss([f], [stats]).dataSync()[0]!;
    assert.ok(Math.abs(got - (4 + 4)) < 1e-5, `${got}`); // |(0, 4)| + |(4, 0)|
    const x = tf.tensor4d([0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 3, 3, 1]);
    // Vertical differences are all 3, horizontal all 1.
    assert.ok(Math.abs(tvLoss(x).dataSync()[0]! - 10) < 1e-6);
    assert.deepEqual(Array.from(roll(x, 1, 0).dataSync()), [6, 7, 8, 0, 1, 2, 3, 4, 5]);
    assert.deepEqual(Array.from(roll(x, 0, -1).dataSync()), [1, 2, 0, 4, 5, 3, 7, 8, 6]);
    assert.equal(bnLayers(buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10 })).length, 9);
  });
});

describe('data-free: a run', () => {
  it('never reads the training split, saves the synthesized dataset, trains the student, resumes', async () => {
    await tf.setBackend('native');
    const teacherCkpt = join(scratch, 'teacher.ckpt');
    saveModelWeights(
      teacherCkpt,
      buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10, seed: 3 }),
      {},
    );
    const splits = splitsWithoutTraining();
    const exp = experimentSchema.parse({
      name: 'df',
      seed: 2,
      data: { dataset: 'code', batchSize: 32 },
      model: { name: 'mlp', options: { hidden: 32 } },
      teacher: { model: { name: 'resnet8' }, checkpoint: teacherCkpt },
      losses: [{ name: 'kd', weight: 1, T: 4 }],
      optimizer: { name: 'adam', lr: 0.003, weightDecay: 0 },
      epochs: 2,
      scheme: { name: 'data-free', images: 64, batchSize: 32, iterations: 4 },
    });
    const lines: string[] = [];
    await assert.rejects(
      runExperiment(exp, 'df.yaml', {
        runsRoot: scratch,
        data: splits(),
        log: (l) => {
          lines.push(l);
          if (l.startsWith('epoch 2/2')) throw new Error('stop');
        },
      }),
      /stop/,
    );
    assert.equal(lines.filter((l) => l.startsWith('synthesis batch')).length, 2, lines.join('\n'));
    const dir = join(scratch, 'df', 'synthetic');
    const synth = loadIdxSplit(dir, 'train');
    assert.equal(synth.count, 64);
    assert.deepEqual(
      Array.from({ length: 10 }, (_, k) => synth.labels.filter((l) => l === k).length),
      [7, 7, 7, 7, 6, 6, 6, 6, 6, 6],
      'classes drawn in turn',
    );
    const grid = PNG.sync.read(readFileSync(join(dir, 'grid.png')));
    assert.equal(grid.width, 10 * 29 + 1);
    const again: string[] = [];
    const r = await runExperiment(exp, 'df.yaml', {
      runsRoot: scratch,
      data: splits(),
      resume: true,
      log: (l) => again.push(l),
    });
    assert.equal(again.filter((l) => l.startsWith('synthesis batch')).length, 0, 'kept batches are reused');
    const s = r['synthetic'] as { images: number; realTrainingImages: number; teacherAgreement: number };
    assert.equal(s.images, 64);
    assert.equal(s.realTrainingImages, 0);
    assert.ok(s.teacherAgreement >= 0 && s.teacherAgreement <= 100);
    assert.deepEqual(
      r.epochs.map((e) => e.epoch),
      [1, 2],
    );
    assert.ok(existsSync(join(r.runDir, 'model.ckpt')));
    assert.ok(loadCheckpoint(join(r.runDir, 'checkpoints', 'last.ckpt')).header.epoch === 2);
  });

  it('refuses an ONNX teacher before any folder', async () => {
    await assert.rejects(
      runExperiment(
        experimentSchema.parse({
          name: 'df-onnx',
          model: { name: 'mlp' },
          teacher: { onnx: 'x.onnx', layout: 'nchw' },
          losses: [{ name: 'kd' }],
          scheme: { name: 'data-free' },
        }),
        'df.yaml',
        { runsRoot: scratch, log: () => {} },
      ),
      /scheme data-free inverts the teacher through its batch-norm statistics/,
    );
    assert.ok(!existsSync(join(scratch, 'df-onnx')));
  });
});
