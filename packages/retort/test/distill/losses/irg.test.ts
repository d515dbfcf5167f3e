import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrThrow } from '../../../src/config/errors.js';
import { type IrgInputs, irg, irgLoss, irgTransform } from '../../../src/distill/losses/irg.js';
import { lossRegistry } from '../../../src/distill/registry.js';
import { assertClose } from './golden.js';
import { BACKENDS, relationCases, retortLayout } from './relation-golden.js';

type Key = 'logits' | 'from' | 'to' | 'feat';
interface IrgCase {
  name: string;
  weights: [number, number, number];
  shapes: Record<Key, number[]>;
  teacher_shapes: Record<Key, number[]>;
  student: Record<Key, number[]>;
  teacher: Record<Key, number[]>;
  loss: number;
  grad_student: Record<Key, number[]>;
}
const cases = relationCases<IrgCase>('irg');
const KEYS = ['logits', 'from', 'to', 'feat'] as const;

function side(data: Record<Key, number[]>, shapes: Record<Key, number[]>): IrgInputs {
  const t = Object.fromEntries(KEYS.map((k) => [k, retortLayout(data[k], shapes[k])]));
  return t as unknown as IrgInputs;
}

const cfgOf = (c: IrgCase) => ({ vertex: c.weights[0], edge: c.weights[1], transform: c.weights[2] });

for (const backend of BACKENDS) {
  describe(`IRG vs PyTorch on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradients (logits, from, to, feat)`, async () => {
        await tf.setBackend(backend);
        const s = side(c.student, c.shapes);
        const t = side(c.teacher, c.teacher_shapes);
        assertClose(await irgLoss(s, t, cfgOf(c)).data(), [c.loss], `${c.name} loss`);
        const f = (...xs: tf.Tensor[]) =>
          irgLoss(
            {
              logits: xs[0] as tf.Tensor2D,
              from: xs[1] as tf.Tensor4D,
              to: xs[2] as tf.Tensor4D,
              feat: xs[3]!,
            },
            t,
            cfgOf(c),
          );
        const grads = tf.grads(f)(KEYS.map((k) => s[k]));
        for (const [i, k] of KEYS.entries())
          assertClose(
            await grads[i]!.data(),
            await retortLayout(c.grad_student[k], c.shapes[k]).data(),
            `${c.name} d/d ${k}`,
          );
        // The teacher side is detached.
        const gt = tf.grads((...xs: tf.Tensor[]) =>
          irgLoss(
            s,
            {
              logits: xs[0] as tf.Tensor2D,
              from: xs[1] as tf.Tensor4D,
              to: xs[2] as tf.Tensor4D,
              feat: xs[3]!,
            },
            cfgOf(c),
          ),
        )(KEYS.map((k) => t[k]));
        for (const g of gt) assert.equal(tf.max(tf.abs(g)).dataSync()[0], 0);
      });
    }
  });
}

describe('IRG descriptor', () => {
  it('registered; defaults 0.1 / 5 / 5; taps from, to and feat with the logits; strict', () => {
    assert.equal(lossRegistry.get('irg'), irg);
    assert.deepEqual(irg.schema.parse({}), { vertex: 0.1, edge: 5, transform: 5 });
    assert.deepEqual(irg.needs, {
      logits: true,
      taps: { student: ['from', 'to', 'feat'], teacher: ['from', 'to', 'feat'] },
    });
    assert.throws(() => parseOrThrow(irg.schema, { vert: 1 }, 'x.yaml losses[1]'), /unknown key 'vert'/);
  });
  it('refuses a transformation between maps it cannot align, naming both shapes', () => {
    assert.throws(
      () => irgTransform(tf.zeros([2, 3, 3, 4]) as tf.Tensor4D, tf.zeros([2, 6, 6, 4]) as tf.Tensor4D),
      /no transformation from a \[3, 3, 4\] map to a \[6, 6, 4\] map/,
    );
    assert.throws(
      () => irgTransform(tf.zeros([2, 4, 4, 4]) as tf.Tensor4D, tf.zeros([2, 4, 4, 6]) as tf.Tensor4D),
      /\[4, 4, 4\] map to a \[4, 4, 6\]/,
    );
  });
});
