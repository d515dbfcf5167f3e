/**
 * Data-free distillation with a generator (scheme dafl): the terms of the generator's loss, the
 * latent batches, and a run whose training split throws when read — the student provably learns
 * from generated images only — that trains the generator (the teacher frozen), saves the drawn set,
 * and resumes without training the generator again.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../../src/config/experiment.js';
import { loadIdxSplit } from '../../../src/data/fashion-mnist.js';
import { daflGenerator, daflTerms, LatentLoader } from '../../../src/distill/schemes/dafl.js';
import { buildModel } from '../../../src/models/index.js';
import { runExperiment } from '../../../src/run/experiment.js';
import { loadCheckpoint, saveModelWeights } from '../../../src/train/checkpoint.js';
import { splitsWithoutTraining } from './helpers.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-dafl-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('dafl: the generator and its loss', () => {
  it('daflTerms: CE to the argmax, minus the mean |feature|, minus the entropy of the mean prediction', async () => {
    await tf.setBackend('native');
    const logits = tf.tensor2d([
      [2, 0, 0],
      [0, 1, 3],
    ]);
    const f = tf.tensor2d([
      [1, -2],
      [3, -4],
    ]);
    const t = daflTerms(logits, f);
    const sm = (r: number[]) => r.map((v) => Math.exp(v) / r.reduce((s, u) => s + Math.exp(u), 0));
    const p0 = sm([2, 0, 0]);
    const p1 = sm([0, 1, 3]);
    const oh = -(Math.log(p0[0]!) + Math.log(p1[2]!)) / 2;
    const mean = p0.map((v, i) => (v + p1[i]!) / 2);
    const ie = mean.reduce((s, v) => s + v * Math.log(v), 0);
    assert.ok(Math.abs(t.oh.dataSync()[0]! - oh) < 1e-6, `oh ${t.oh.dataSync()[0]} vs ${oh}`);
    assert.ok(Math.abs(t.a.dataSync()[0]! - -2.5) < 1e-6);
    assert.ok(Math.abs(t.ie.dataSync()[0]! - ie) < 1e-6, `ie ${t.ie.dataSync()[0]} vs ${ie}`);
    // Balanced predictions have the lowest -H: log(1/K).
    const flat = daflTerms(tf.mul(tf.eye(3), 5) as tf.Tensor2D, f);
    assert.ok(Math.abs(flat.ie.dataSync()[0]! - Math.log(1 / 3)) < 1e-6);
  });

  it('the generator maps [N, 1, 1, latent] to [N, H, W, C] in [-1, 1]; odd sizes are refused', async () => {
    await tf.setBackend('native');
    const g = daflGenerator({ shape: [28, 28, 1], latent: 8, width: 8, seed: 1 });
    const out = g.predict(tf.randomNormal([3, 1, 1, 8], 0, 1, 'float32', 1)) as tf.Tensor;
    assert.deepEqual(out.shape, [3, 28, 28, 1]);
    assert.ok(tf.max(tf.abs(out)).dataSync()[0]! <= 1);
    assert.throws(() => daflGenerator({ shape: [30, 28, 1], latent: 8, width: 8 }), /multiples of 4/);
  });

  it('LatentLoader: standard normal batches, the same from the same random state', () => {
    const a = new LatentLoader(64, 3, 16, 5);
    const batches = [...a.epoch()];
    assert.equal(batches.length, 3);
    assert.equal(batches[0]!.x.length, 64 * 16);
    const all = batches.flatMap((b) => Array.from(b.x));
    const m = all.reduce((s, v) => s + v, 0) / all.length;
    const v = all.reduce((s, u) => s + (u - m) ** 2, 0) / all.length;
    assert.ok(Math.abs(m) < 0.1 && Math.abs(v - 1) < 0.1, `mean ${m} var ${v}`);
    const b = new LatentLoader(64, 3, 16, 5);
    b.rng.setState(a.rng.getState());
    assert.deepEqual(Array.from([...a.epoch()][2]!.x), Array.from([...b.epoch()][2]!.x));
  });
});

describe('dafl: a run', () => {
  it('never reads the training split, trains only the generator against the frozen teacher, saves the set, resumes', async () => {
    await tf.setBackend('native');
    const teacherCkpt = join(scratch, 'teacher.ckpt');
    saveModelWeights(
      teacherCkpt,
      buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10, seed: 3 }),
      {},
    );
    const teacherBytes = readFileSync(teacherCkpt);
    const splits = splitsWithoutTraining();
    const exp = experimentSchema.parse({
      name: 'dafl',
      seed: 2,
      data: { dataset: 'code', batchSize: 32 },
      model: { name: 'mlp', options: { hidden: 32 } },
      teacher: { model: { name: 'resnet8' }, checkpoint: teacherCkpt },
      losses: [{ name: 'kd', weight: 1, T: 4 }],
      optimizer: { name: 'adam', lr: 0.003, weightDecay: 0 },
      epochs: 2,
      scheme: { name: 'dafl', images: 64, batchSize: 16, epochs: 2, steps: 3, width: 8, latent: 8, bn: 0.1 },
    });
    const lines: string[] = [];
    await assert.rejects(
      runExperiment(exp, 'dafl.yaml', {
        runsRoot: scratch,
        data: splits(),
        log: (l) => {
          lines.push(l);
          if (l.startsWith('epoch 2/2') && lines.some((u) => u.startsWith('stage main')))
            throw new Error('stop');
        },
      }),
      /stop/,
    );
    const dir = join(scratch, 'dafl', 'synthetic');
    // The generator moved away from its initial weights; the teacher's file is untouched.
    const init = daflGenerator({ shape: [28, 28, 1], latent: 8, width: 8, seed: 2 * 7 + 1 });
    const gen = loadCheckpoint(join(dir, 'generator', 'checkpoints', 'last.ckpt'));
    assert.equal(gen.header.epoch, 2);
    // Checkpoint tensors: the generator's weights in model order, then the optimizer's state.
    const saved = [...gen.values.values()];
    const moved = init.weights.filter((w, i) => {
      const v = w.read().dataSync();
      assert.equal(v.length, saved[i]!.data.length, w.name);
      return v.some((u, j) => Math.abs(u - saved[i]!.data[j]!) > 1e-6);
    });
    assert.ok(moved.length >= init.trainableWeights.length / 2, `${moved.length} weights moved`);
    assert.deepEqual(readFileSync(teacherCkpt), teacherBytes);
    const metrics = readFileSync(join(dir, 'generator', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(metrics.length, 2);
    assert.ok(Object.keys(JSON.parse(metrics[0]!).terms).sort().join() === 'a,bn,ie,oh');
    const synth = loadIdxSplit(dir, 'train');
    assert.equal(synth.count, 64);
    assert.ok(existsSync(join(dir, 'grid.png')));

    const again: string[] = [];
    const r = await runExperiment(exp, 'dafl.yaml', {
      runsRoot: scratch,
      data: splits(),
      resume: true,
      log: (l) => again.push(l),
    });
    assert.ok(
      again.some((l) => /resumed from .*generator.* at epoch 2/.test(l)),
      again.join('\n'),
    );
    // The generator's epochs are not run again; only the student's second epoch is.
    assert.equal(again.filter((l) => l.startsWith('epoch ')).length, 1, again.join('\n'));
    assert.deepEqual(loadIdxSplit(dir, 'train').images, synth.images, 'the same set is drawn again');
    const s = r['synthetic'] as { images: number; realTrainingImages: number; classCounts: number[] };
    assert.equal(s.images, 64);
    assert.equal(s.realTrainingImages, 0);
    assert.equal(
      s.classCounts.reduce((a, b) => a + b, 0),
      64,
    );
    assert.deepEqual(
      r.epochs.map((e) => e.epoch),
      [1, 2],
    );
  });

  it('refuses an ONNX teacher before any folder', async () => {
    await assert.rejects(
      runExperiment(
        experimentSchema.parse({
          name: 'dafl-onnx',
          model: { name: 'mlp' },
          teacher: { onnx: 'x.onnx', layout: 'nchw' },
          losses: [{ name: 'kd' }],
          scheme: { name: 'dafl' },
        }),
        'dafl.yaml',
        { runsRoot: scratch, log: () => {} },
      ),
      /scheme dafl trains a generator through the teacher's gradients/,
    );
    assert.ok(!existsSync(join(scratch, 'dafl-onnx')));
  });
});
