/**
 * Class-wise self-KD (scheme cs-kd): the class-wise term against PyTorch, the partner draw (same
 * class, never itself, stateless), and a run that adds the term to CE and resumes exactly.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../../src/config/experiment.js';
import { classPartners, csKdLoss, indicesByClass } from '../../../src/distill/schemes/cs-kd.js';
import { runExperiment } from '../../../src/run/experiment.js';
import { assertClose, BACKENDS, lossFixture } from '../losses/golden.js';
import { assertSameCheckpoint } from './helpers.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-cskd-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

interface CsKdCase {
  name: string;
  N: number;
  K: number;
  T: number;
  student: number[];
  partner: number[];
  loss: number;
  grad_student: number[];
}
const cases = lossFixture<CsKdCase[]>('cskd');

for (const backend of BACKENDS) {
  describe(`cs-kd's class-wise term vs PyTorch on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value, the student's gradient, none for the partner`, async () => {
        await tf.setBackend(backend);
        const s = tf.tensor2d(c.student, [c.N, c.K]);
        const p = tf.tensor2d(c.partner, [c.N, c.K]);
        const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
          csKdLoss(a as tf.Tensor2D, b as tf.Tensor2D, c.T),
        )([s, p]);
        assertClose(await value.data(), [c.loss], `${c.name} loss`);
        assertClose(await grads[0]!.data(), c.grad_student, `${c.name} d/d student`);
        assert.equal(tf.max(tf.abs(grads[1]!)).dataSync()[0], 0, 'the partner is detached');
      });
    }
  });
}

describe('cs-kd: partners', () => {
  it('same class, never the image itself (unless alone in its class), the same draw again, another per epoch', () => {
    const labels = Int32Array.from({ length: 1000 }, (_, i) => i % 7);
    labels[999] = 9; // alone in class 9
    const split = Uint32Array.from({ length: 1000 }, (_, i) => i);
    const by = indicesByClass(labels, split);
    const p = classPartners(split, labels, by, 0, 3);
    for (const [k, i] of split.entries()) {
      assert.equal(labels[p[k]!], labels[i]);
      if (i !== 999) assert.notEqual(p[k], i);
    }
    assert.equal(p[999], 999);
    assert.deepEqual(classPartners(split, labels, by, 0, 3), p);
    const next = classPartners(split, labels, by, 1, 3);
    assert.ok(next.filter((v, k) => v !== p[k]).length > 900, 'a new draw each epoch');
    // Only indices of the split are drawn.
    const half = split.subarray(0, 500);
    const q = classPartners(half, labels, indicesByClass(labels, half), 0, 3);
    assert.ok(q.every((v) => v < 500));
  });
});

describe('cs-kd: a run', () => {
  const base = {
    seed: 6,
    data: { dataset: 'fashion-mnist', batchSize: 64, trainLimit: 512, testLimit: 256, cropPadding: 2 },
    model: { name: 'mlp', options: { hidden: 32 } },
    losses: [{ name: 'ce', weight: 1 }],
    optimizer: { name: 'adam', lr: 0.003 },
    epochs: 2,
    scheme: { name: 'cs-kd', T: 4, lambda: 1 },
  } as const;

  it('adds the class-wise term to CE and resumes exactly; refuses a teacher-bound loss', async () => {
    await tf.setBackend('native');
    const straight = await runExperiment(experimentSchema.parse({ ...base, name: 'cskd' }), 'c.yaml', {
      runsRoot: scratch,
      log: () => {},
    });
    assert.deepEqual(straight.stages[0]!.losses, ['ce', 'cs-kd']);
    assert.ok(straight.epochs[0]!.terms['cs-kd']! > 1e-4, JSON.stringify(straight.epochs[0]));
    assert.ok(straight.testTop1 > 40, `${straight.testTop1}`);
    const exp = experimentSchema.parse({ ...base, name: 'cskd-resume' });
    await assert.rejects(
      runExperiment(exp, 'c.yaml', {
        runsRoot: scratch,
        log: (l) => {
          if (l.startsWith('epoch 2/2')) throw new Error('stop');
        },
      }),
      /stop/,
    );
    const resumed = await runExperiment(exp, 'c.yaml', { runsRoot: scratch, resume: true, log: () => {} });
    assertSameCheckpoint(join(straight.runDir, 'model.ckpt'), join(resumed.runDir, 'model.ckpt'));
    await assert.rejects(
      runExperiment(
        experimentSchema.parse({ ...base, name: 'cskd-kd', losses: [{ name: 'kd' }] }),
        'c.yaml',
        { runsRoot: scratch, log: () => {} },
      ),
      /scheme cs-kd has no teacher/,
    );
  });
});
