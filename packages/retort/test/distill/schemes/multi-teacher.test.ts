/**
 * Multi-teacher distillation: per-example weights (average, fixed, entropy, CE), the mixture the
 * logit losses see, and a run with two teachers of different families: one connector per teacher
 * for a feature loss, a cache per teacher, the teachers' accuracies in results.json.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../../src/config/experiment.js';
import { mixtureLogits, randomTeachers, teacherWeights } from '../../../src/distill/schemes/multi-teacher.js';
import { buildModel } from '../../../src/models/index.js';
import { runExperiment } from '../../../src/run/experiment.js';
import { loadCheckpoint, saveModelWeights } from '../../../src/train/checkpoint.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-mt-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('multi-teacher: weights and mixture', () => {
  const a = tf.tensor2d([
    [5, 0, 0],
    [0, 1, 0],
  ]); // confident on row 0, on class 0
  const b = tf.tensor2d([
    [0.1, 0, 0],
    [0, 0, 6],
  ]);
  const y = tf.tensor1d([0, 1], 'int32');
  const b2 = (t: tf.Tensor2D) => tf.reverse(t, 1) as tf.Tensor2D;
  it('average and fixed are constant rows; entropy favours the confident teacher; ce the one right on the label', () => {
    assert.deepEqual(
      Array.from(teacherWeights([a, b], y, { weighting: 'average' }).dataSync()),
      [0.5, 0.5, 0.5, 0.5],
    );
    const f = teacherWeights([a, b], y, { weighting: 'fixed', weights: [3, 1] }).dataSync();
    assert.deepEqual(Array.from(f), [0.75, 0.25, 0.75, 0.25]);
    const e = teacherWeights([a, b], y, { weighting: 'entropy' }).arraySync();
    assert.ok(e[0]![0]! > e[0]![1]!, 'row 0: teacher a is sharper');
    assert.ok(e[1]![1]! > e[1]![0]!, 'row 1: teacher b is sharper');
    const c = teacherWeights([a, b], y, { weighting: 'ce' }).arraySync();
    assert.ok(c[0]![0]! > c[0]![1]!, 'row 0: a is right and sure');
    assert.ok(c[1]![0]! > c[1]![1]!, 'row 1: b is sure of the wrong class');
    for (const row of [...e, ...c]) assert.ok(Math.abs(row[0]! + row[1]! - 1) < 1e-6);
    // A lower tau sharpens the same preference.
    const sharp = teacherWeights([a, b], y, { weighting: 'ce', tau: 0.1 }).arraySync();
    assert.ok(sharp[0]![0]! > c[0]![0]! && sharp[1]![0]! > c[1]![0]!, JSON.stringify([sharp, c]));
  });
  it('random-sample draws a teacher per example, random-batch one per batch: uniform, repeatable, one-hot rows', () => {
    const idx = Uint32Array.from({ length: 3000 }, (_, i) => i);
    const d = randomTeachers('random-sample', idx, 0, 1, 3);
    const counts = [0, 1, 2].map((k) => d.filter((v) => v === k).length);
    assert.ok(
      counts.every((c) => Math.abs(c - 1000) < 100),
      `${counts}`,
    );
    assert.deepEqual(randomTeachers('random-sample', idx, 0, 1, 3), d, 'the same draw again (resume)');
    const other = randomTeachers('random-sample', idx, 1, 1, 3);
    assert.ok(
      other.some((v, i) => v !== d[i]),
      'another epoch draws again',
    );
    const b = randomTeachers('random-batch', Uint32Array.from([7, 3, 9]), 2, 1, 2);
    assert.ok(b.every((v) => v === b[0]));
    const batches = Array.from(
      { length: 200 },
      (_, k) => randomTeachers('random-batch', Uint32Array.of(k), 0, 1, 2)[0]!,
    );
    const ones = batches.filter((v) => v === 1).length;
    assert.ok(ones > 70 && ones < 130, `${ones} of 200 batches drew teacher 2`);
    const w = teacherWeights([a, b2(a)], y, { weighting: 'random-sample' }, Int32Array.from([1, 0]));
    assert.deepEqual(Array.from(w.dataSync()), [0, 1, 1, 0]);
    assert.throws(() => teacherWeights([a, a], y, { weighting: 'random-batch' }), /needs the drawn teacher/);
    // The mixture of a drawn teacher is that teacher's distribution alone (finite, no NaN).
    const mix = tf.softmax(tf.div(mixtureLogits([a, b2(a)], w, 2), 2)).dataSync();
    const soft = (t: tf.Tensor2D) => (tf.softmax(tf.div(t, 2)) as tf.Tensor2D).arraySync();
    const want = [...soft(b2(a))[0]!, ...soft(a)[1]!];
    for (let i = 0; i < want.length; i++)
      assert.ok(Math.abs(mix[i]! - want[i]!) < 1e-6, `${mix[i]} ${want[i]}`);
  });
  it('softmax(mixture / T) is the weighted mixture of the softened distributions', () => {
    const T = 3;
    const w = teacherWeights([a, b], y, { weighting: 'entropy' });
    const got = tf.softmax(tf.div(mixtureLogits([a, b], w, T), T)).dataSync();
    const want = tf
      .add(
        tf.mul(tf.softmax(tf.div(a, T)), tf.slice(w, [0, 0], [-1, 1])),
        tf.mul(tf.softmax(tf.div(b, T)), tf.slice(w, [0, 1], [-1, 1])),
      )
      .dataSync();
    for (let i = 0; i < want.length; i++)
      assert.ok(Math.abs(got[i]! - want[i]!) < 1e-6, `${got[i]} ${want[i]}`);
  });
});

describe('multi-teacher: a run with two teachers of different families', () => {
  it('one connector per teacher for a feature loss, a cache each, teachers in results.json', async () => {
    await tf.setBackend('native');
    const opts = { inputShape: [28, 28, 1] as [number, number, number], numClasses: 10 };
    const t1 = join(scratch, 'deepnn.ckpt');
    const t2 = join(scratch, 'lightnn.ckpt');
    saveModelWeights(t1, buildModel('deepnn', { ...opts, seed: 1 }), {});
    saveModelWeights(t2, buildModel('lightnn', { ...opts, seed: 2 }), {});
    const lines: string[] = [];
    const r = await runExperiment(
      experimentSchema.parse({
        name: 'mt',
        seed: 3,
        data: { dataset: 'fashion-mnist', batchSize: 64, trainLimit: 256, testLimit: 128 },
        model: { name: 'lightnn' },
        losses: [
          { name: 'ce', weight: 0.5 },
          { name: 'kd', weight: 0.5, T: 4 },
          {
            name: 'regressor',
            weight: 1,
            taps: { student: { hint: 'features.conv2' }, teacher: { hint: 'features.conv3' } },
          },
        ],
        optimizer: { name: 'adam', lr: 0.003, weightDecay: 0 },
        epochs: 1,
        scheme: {
          name: 'multi-teacher',
          weighting: 'ce',
          teachers: [
            { model: { name: 'deepnn' }, checkpoint: t1 },
            { model: { name: 'lightnn' }, checkpoint: t2 },
          ],
          roles: [{}, { hint: 'features.conv2' }],
        },
      }),
      'mt.yaml',
      { runsRoot: scratch, log: (l) => lines.push(l) },
    );
    assert.deepEqual(Object.keys(r.epochs[0]!.terms).sort(), ['ce', 'kd', 'regressor@t1', 'regressor@t2']);
    const teachers = r['teachers'] as { source: string; testTop1: number }[];
    assert.deepEqual(
      teachers.map((t) => t.source),
      ['deepnn', 'lightnn'],
    );
    const cached = lines.filter((l) => /^teacher \d outputs cached in/.test(l));
    assert.equal(cached.length, 2, lines.join('\n'));
    assert.notEqual(cached[0]!.split(' in ')[1], cached[1]!.split(' in ')[1]);
    // Two regressors (conv kernel + bias each) besides the student in the checkpoint.
    const ck = loadCheckpoint(join(r.runDir, 'checkpoints', 'last.ckpt'));
    const mods = new Set(
      ck.header.tensors.filter((t) => !t.name.startsWith('opt/')).map((t) => t.name.split('/')[0]),
    );
    assert.equal(mods.size, 3, [...mods].join(','));
  });

  it('refuses fixed weighting without one weight per teacher, before any folder', async () => {
    await assert.rejects(
      runExperiment(
        experimentSchema.parse({
          name: 'mt-bad',
          model: { name: 'lightnn' },
          losses: [{ name: 'kd' }],
          scheme: {
            name: 'multi-teacher',
            weighting: 'fixed',
            weights: [1],
            teachers: [
              { model: { name: 'deepnn' }, checkpoint: 'a' },
              { model: { name: 'lightnn' }, checkpoint: 'b' },
            ],
          },
        }),
        'mt.yaml',
        { runsRoot: scratch, log: () => {} },
      ),
      /scheme.weights: weighting 'fixed' needs one weight per teacher \(2\), got 1/,
    );
    assert.ok(!existsSync(join(scratch, 'mt-bad')));
  });
});
