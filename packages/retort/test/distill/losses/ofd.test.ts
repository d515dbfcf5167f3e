import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { ofd, ofdLoss, ofdMargin } from '../../../src/distill/losses/ofd.js';
import { partWeight } from '../../../src/distill/losses/parts.js';
import { assertClose } from './golden.js';
import {
  asConnectors,
  BACKENDS,
  type ConnectorCase,
  connectorTensors,
  maps,
  methodCases,
} from './methods-golden.js';

interface OfdCase extends ConnectorCase {
  teacher_gammas: number[][];
  teacher_betas: number[][];
  margins: number[][];
}
const cases = methodCases<OfdCase>('ofd');

for (const backend of BACKENDS) {
  describe(`OFD vs PyTorch (Heo et al.'s overhaul) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: margins from BN statistics, value and gradients (student maps, connectors)`, async () => {
        await tf.setBackend(backend);
        for (const [i, m] of c.margins.entries())
          assertClose(ofdMargin(c.teacher_gammas[i]!, c.teacher_betas[i]!), m, `${c.name} margin ${i}`);
        const s = maps(c.student, c.student_shapes);
        const t = maps(c.teacher, c.teacher_shapes);
        const margins = c.margins.map((m) => tf.tensor1d(m));
        const w = connectorTensors(c);
        const k = s.length;
        const f = (...xs: tf.Tensor[]) =>
          ofdLoss(xs.slice(0, k) as tf.Tensor4D[], t, asConnectors(xs.slice(k)), margins);
        assertClose(await f(...s, ...w).data(), [c.loss], `${c.name} loss`);
        const grads = tf.grads(f)([...s, ...w]);
        for (let i = 0; i < k; i++) {
          assertClose(await grads[i]!.data(), c.grad_student[i]!, `${c.name} d/d s${i}`);
          assertClose(await grads[k + 3 * i]!.data(), c.grad_kernels[i]!, `${c.name} d/d kernel${i}`);
          assertClose(await grads[k + 3 * i + 1]!.data(), c.grad_gammas[i]!, `${c.name} d/d gamma${i}`);
          assertClose(await grads[k + 3 * i + 2]!.data(), c.grad_betas[i]!, `${c.name} d/d beta${i}`);
        }
      });
    }
  });
}

describe('OFD descriptor', () => {
  it('estimates the margins once, from the first batch of teacher features', async () => {
    await tf.setBackend('native');
    const st = { stage1: [4, 4, 2], stage2: [2, 2, 3], stage3: [2, 2, 4] };
    const tt = { stage1: [4, 4, 3], stage2: [2, 2, 4], stage3: [2, 2, 5] };
    const parts = ofd.parts!({ student: st, teacher: tt }, {}, { numExamples: 1, numClasses: 10, seed: 0 });
    const feats = (sh: Record<string, number[]>, seed: number) =>
      Object.fromEntries(
        Object.entries(sh).map(([r, s], i) => [r, tf.randomNormal([3, ...s], 0.5, 2, 'float32', seed + i)]),
      );
    const logits = tf.zeros([3, 10]) as tf.Tensor2D;
    const ctx = {
      config: {},
      student: { logits, features: feats(st, 1) },
      teacher: { logits, features: feats(tt, 10) },
      labels: tf.zeros([3], 'int32') as tf.Tensor1D,
      epoch: 0,
      indices: new Uint32Array(3),
      parts,
    };
    const v = ofd.loss(ctx as never);
    assert.ok(Number.isFinite((await v.data())[0]!));
    const t3 = ctx.teacher.features['stage3']!;
    const { mean, variance } = tf.moments(t3, [0, 1, 2]);
    const want = ofdMargin(tf.sqrt(variance).dataSync(), mean.dataSync());
    assertClose(await partWeight(parts.margins, 'stage3').data(), want, 'stage3 margins');
    assert.ok(
      Array.from(want).every((m) => m < 0),
      'margins are negative (E[x | x < 0])',
    );
  });
});
