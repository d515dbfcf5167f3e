/**
 * Teacher-assistant KD (scheme takd): the assistant learns from the experiment's teacher, the
 * student from the assistant (frozen); the assistant is a loadable run folder; a run stopped in the
 * student's training resumes exactly without training the assistant again; feature losses are
 * refused before any folder.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../../src/config/experiment.js';
import type { BatchLoader } from '../../../src/data/loader.js';
import { buildModel } from '../../../src/models/index.js';
import { runExperiment } from '../../../src/run/experiment.js';
import { loadRun } from '../../../src/run/load.js';
import { loadCheckpoint, saveModelWeights } from '../../../src/train/checkpoint.js';
import { evaluate } from '../../../src/train/trainer.js';
import { assertSameCheckpoint } from './helpers.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-takd-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const teacherCkpt = join(scratch, 'teacher.ckpt');

const base = {
  seed: 4,
  data: { dataset: 'fashion-mnist', batchSize: 64, trainLimit: 512, testLimit: 256 },
  model: { name: 'mlp', options: { hidden: 16 } },
  teacher: { model: { name: 'lightnn' }, checkpoint: teacherCkpt },
  losses: [
    { name: 'ce', weight: 0.5 },
    { name: 'kd', weight: 0.5, T: 2 },
  ],
  optimizer: { name: 'adam', lr: 0.003 },
  epochs: 2,
  scheme: { name: 'takd', assistants: [{ name: 'mlp', options: { hidden: 48 } }], assistantEpochs: 1 },
} as const;

describe('scheme takd', () => {
  it('teacher -> assistant -> student; the assistant is a run folder; resume skips it and is exact', async () => {
    await tf.setBackend('native');
    saveModelWeights(
      teacherCkpt,
      buildModel('lightnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 9 }),
      {},
    );
    const lines: string[] = [];
    const straight = await runExperiment(experimentSchema.parse({ ...base, name: 'takd' }), 'takd.yaml', {
      runsRoot: scratch,
      log: (l) => lines.push(l),
    });
    assert.equal(straight.scheme, 'takd');
    assert.deepEqual(
      straight.stages.map((s) => [s.name, s.epochs, s.losses.join('+')]),
      [
        ['ta1/main', 1, 'ce+kd'],
        ['student/main', 2, 'ce+kd'],
      ],
    );
    assert.ok(
      lines.some((l) => /takd: assistant ta1 \(mlp.*\), taught by /.test(l)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => l.includes('takd: the student, taught by assistant ta1')),
      `LINES ${lines.filter((l) => l.startsWith('takd')).join(' | ')}`,
    );
    const tas = straight['assistants'] as { label: string; dir: string; testTop1: number; params: number }[];
    assert.deepEqual(
      tas.map((t) => t.label),
      ['ta1'],
    );
    const ta = await loadRun(tas[0]!.dir);
    assert.equal(ta.model.countParams(), tas[0]!.params);
    assert.ok(tas[0]!.params > straight.params, 'the assistant is the 48-wide MLP');
    const reloaded = (await evaluate(ta.model, ta.data.test)).top1;
    assert.ok(Math.abs(reloaded - tas[0]!.testTop1) < 1e-9, `reloaded ${reloaded} vs ${tas[0]!.testTop1}`);
    // The student learnt from the trained assistant: the teacher logits cached for its link are
    // the reloaded assistant's outputs on the training images (in dataset order).
    const caches = lines.filter((l) => l.startsWith('teacher logits cached in ')).map((l) => l.slice(25));
    assert.equal(caches.length, 2, lines.join('\n'));
    const cached = loadCheckpoint(caches[1]!).values.get('logits')!;
    const first = [...(ta.data.trainPlain as BatchLoader).epoch()][0]!;
    const want = (ta.model.predict(tf.tensor4d(first.x, [first.n, 28, 28, 1])) as tf.Tensor).dataSync();
    for (let i = 0; i < 10 * first.n; i++)
      assert.ok(Math.abs(cached.data[i]! - want[i]!) < 1e-4, `logit ${i}: ${cached.data[i]} vs ${want[i]}`);

    const exp = experimentSchema.parse({ ...base, name: 'takd-resume' });
    await assert.rejects(
      runExperiment(exp, 'takd.yaml', {
        runsRoot: scratch,
        log: (l) => {
          if (l.startsWith('epoch 2/2')) throw new Error('stop');
        },
      }),
      /stop/,
    );
    assert.ok(existsSync(join(scratch, 'takd-resume', 'assistants', 'ta1', 'model.ckpt')));
    const again: string[] = [];
    const resumed = await runExperiment(exp, 'takd.yaml', {
      runsRoot: scratch,
      resume: true,
      log: (l) => again.push(l),
    });
    assert.ok(
      again.some((l) => l.includes('assistant ta1 (mlp') && l.includes('already trained')),
      again.join('\n'),
    );
    assertSameCheckpoint(join(straight.runDir, 'model.ckpt'), join(resumed.runDir, 'model.ckpt'));
  });

  it('refuses feature losses down the chain and a missing teacher, before any folder', async () => {
    await assert.rejects(
      runExperiment(
        experimentSchema.parse({
          ...base,
          name: 't1',
          losses: [{ name: 'fitnet', taps: { student: { hint: 'a' }, teacher: { hint: 'b' } } }],
        }),
        't.yaml',
        { runsRoot: scratch, log: () => {} },
      ),
      /scheme takd: loss fitnet taps features \(hint\).*use response losses/,
    );
    await assert.rejects(
      runExperiment(experimentSchema.parse({ ...base, name: 't2', teacher: undefined }), 't.yaml', {
        runsRoot: scratch,
        log: () => {},
      }),
      /scheme takd/,
    );
    assert.ok(!existsSync(join(scratch, 't1')) && !existsSync(join(scratch, 't2')));
  });
});
