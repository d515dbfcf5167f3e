import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { adversarialLoss, makeDiscriminator } from '../../../src/distill/losses/adversarial.js';
import { lossRegistry } from '../../../src/distill/registry.js';
import { assertClose, BACKENDS, lossFixture } from './golden.js';

interface AdvCase {
  name: string;
  N: number;
  K: number;
  hidden: number;
  T: number;
  reverse: number;
  student: number[];
  teacher: number[];
  w1: number[];
  b1: number[];
  w2: number[];
  b2: number[];
  loss: number;
  grad_student: number[];
  grad_w1: number[];
  grad_b1: number[];
  grad_w2: number[];
  grad_b2: number[];
}
const cases = lossFixture<AdvCase[]>('adversarial');

for (const backend of BACKENDS) {
  describe(`adversarial loss vs PyTorch on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value, the student's reversed gradient, the discriminator's gradients`, async () => {
        await tf.setBackend(backend);
        const d = makeDiscriminator(c.K, c.hidden);
        d.setWeights([
          tf.tensor2d(c.w1, [c.K, c.hidden]),
          tf.tensor1d(c.b1),
          tf.tensor2d(c.w2, [c.hidden, 1]),
          tf.tensor1d(c.b2),
        ]);
        const s = tf.tensor2d(c.student, [c.N, c.K]);
        const t = tf.tensor2d(c.teacher, [c.N, c.K]);
        const cfg = { T: c.T, hidden: c.hidden, reverse: c.reverse };
        const { value, grad } = tf.valueAndGrad((x: tf.Tensor2D) => adversarialLoss(x, t, d, cfg))(s);
        assertClose(await value.data(), [c.loss], `${c.name} loss`);
        assertClose(await grad.data(), c.grad_student, `${c.name} d/d student (reversed)`);
        const vars = d.trainableWeights.map((w) => w.read() as tf.Variable);
        const g = tf.variableGrads(() => adversarialLoss(s, t, d, cfg), vars);
        const want = [c.grad_w1, c.grad_b1, c.grad_w2, c.grad_b2];
        vars.forEach((v, i) => {
          assertClose(g.grads[v.name]!.dataSync(), want[i]!, `${c.name} d/d ${v.name}`);
        });
        tf.dispose([s, t, value, grad, ...Object.values(g.grads), g.value]);
        d.dispose();
      });
    }
  });
}

describe('adversarial descriptor', () => {
  it('is registered, needs teacher logits and builds a discriminator part', () => {
    const d = lossRegistry.get('adversarial');
    assert.deepEqual(d.needs, { logits: true });
    const parts = d.parts!(
      { student: {}, teacher: {} },
      { T: 1, hidden: 8, reverse: 1 },
      {
        numExamples: 1,
        numClasses: 10,
        batchSize: 8,
        seed: 1,
      },
    );
    assert.deepEqual(Object.keys(parts), ['discriminator']);
    assert.deepEqual(parts['discriminator']!.outputs[0]!.shape, [null, 1]);
  });
});
