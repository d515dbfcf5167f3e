import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { cc, ccLoss, linearWeights } from '../../../src/distill/losses/cc.js';
import { assertClose } from './golden.js';
import { BACKENDS, methodCases } from './methods-golden.js';

interface CcCase {
  name: string;
  n: number;
  ds: number;
  dt: number;
  k: number;
  student: number[];
  teacher: number[];
  ws: number[];
  bs: number[];
  wt: number[];
  bt: number[];
  loss: number;
  grad_student: number[];
  grad_ws: number[];
  grad_bs: number[];
  grad_wt: number[];
  grad_bt: number[];
}
const cases = methodCases<CcCase>('cc');

for (const backend of BACKENDS) {
  describe(`CC vs PyTorch (RepDistiller's Correlation) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradients (student, both embeddings)`, async () => {
        await tf.setBackend(backend);
        const s = tf.tensor2d(c.student, [c.n, c.ds]);
        const t = tf.tensor2d(c.teacher, [c.n, c.dt]);
        const ws = tf.tensor2d(c.ws, [c.ds, c.k]);
        const bs = tf.tensor1d(c.bs);
        const wt = tf.tensor2d(c.wt, [c.dt, c.k]);
        const bt = tf.tensor1d(c.bt);
        const f = (x: tf.Tensor, a: tf.Tensor, b: tf.Tensor, d: tf.Tensor, e: tf.Tensor) =>
          ccLoss(
            x,
            t,
            { kernel: a as tf.Tensor2D, bias: b as tf.Tensor1D },
            { kernel: d as tf.Tensor2D, bias: e as tf.Tensor1D },
          );
        assertClose(await f(s, ws, bs, wt, bt).data(), [c.loss], `${c.name} loss`);
        const g = tf.grads(f)([s, ws, bs, wt, bt]);
        const want = [c.grad_student, c.grad_ws, c.grad_bs, c.grad_wt, c.grad_bt];
        for (const [i, w] of want.entries()) assertClose(await g[i]!.data(), w, `${c.name} gradient ${i}`);
      });
    }
  });
}

describe('CC descriptor', () => {
  it('builds both embeddings from the tapped widths (feat_dim 128) and the loss runs through them', async () => {
    await tf.setBackend('native');
    const cfg = cc.schema.parse({});
    assert.equal(cfg.featDim, 128);
    const parts = cc.parts!({ student: { feat: [16] }, teacher: { feat: [1, 1, 64] } }, cfg, {
      numExamples: 10,
      numClasses: 10,
      seed: 1,
    });
    const es = linearWeights(parts.embedS);
    const et = linearWeights(parts.embedT);
    assert.deepEqual(es.kernel.shape, [16, 128]);
    assert.deepEqual(et.kernel.shape, [64, 128]);
    assert.ok(es.kernel instanceof tf.Variable, 'live variable (trained with the student)');
    const s = tf.randomNormal([4, 16]);
    const t = tf.randomNormal([4, 1, 1, 64]);
    const logits = tf.zeros([4, 10]) as tf.Tensor2D;
    const v = cc.loss({
      config: cfg,
      student: { logits, features: { feat: s } },
      teacher: { logits, features: { feat: t } },
      labels: tf.zeros([4], 'int32'),
      epoch: 0,
      indices: new Uint32Array(4),
      parts,
    });
    assertClose(await v.data(), await ccLoss(s, t, es, et).data(), 'descriptor');
    assert.throws(() => ccLoss(tf.zeros([4, 15]), t, es, et), /ccLoss: embeddings take 16/);
  });
});
