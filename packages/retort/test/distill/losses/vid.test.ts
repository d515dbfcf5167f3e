import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { type VidWeights, vid, vidLoss, vidPairLoss, vidWeights } from '../../../src/distill/losses/vid.js';
import { assertClose, fixtureSection } from './golden.js';

/** PyTorch layouts: maps NCHW, 1x1 kernels OIHW. */
interface VidCase {
  name: string;
  student_shape: number[];
  teacher_shape: number[];
  eps: number;
  student: number[];
  teacher: number[];
  w1: number[];
  w2: number[];
  w3: number[];
  alpha: number[];
  loss: number;
  grad_student: number[];
  grad_w1: number[];
  grad_w2: number[];
  grad_w3: number[];
  grad_alpha: number[];
}
const cases = fixtureSection<VidCase[]>('contrastive.json', 'vid');

const nhwc = (d: number[], s: number[]) =>
  tf.transpose(tf.tensor4d(d, s as [number, number, number, number]), [0, 2, 3, 1]) as tf.Tensor4D;
/** OIHW [o, i, 1, 1] -> HWIO [1, 1, i, o]. */
const hwio = (d: number[], o: number, i: number) =>
  tf.transpose(tf.tensor4d(d, [o, i, 1, 1]), [2, 3, 1, 0]) as tf.Tensor4D;

function load(c: VidCase) {
  const [cs, ct] = [c.student_shape[1]!, c.teacher_shape[1]!];
  return {
    s: nhwc(c.student, c.student_shape),
    t: nhwc(c.teacher, c.teacher_shape),
    w: {
      w1: hwio(c.w1, ct, cs),
      w2: hwio(c.w2, ct, ct),
      w3: hwio(c.w3, ct, ct),
      alpha: tf.tensor1d(c.alpha),
    } as VidWeights,
    grads: [
      nhwc(c.grad_student, c.student_shape),
      hwio(c.grad_w1, ct, cs),
      hwio(c.grad_w2, ct, ct),
      hwio(c.grad_w3, ct, ct),
      tf.tensor1d(c.grad_alpha),
    ],
  };
}

for (const backend of ['cpu', 'native']) {
  describe(`VID vs PyTorch (Ahn et al. / RepDistiller's VIDLoss) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradients (student, three kernels, alpha)`, async () => {
        await tf.setBackend(backend);
        const { s, t, w, grads } = load(c);
        const f = (x: tf.Tensor, a: tf.Tensor, b: tf.Tensor, d: tf.Tensor, al: tf.Tensor) =>
          vidPairLoss(
            x as tf.Tensor4D,
            t,
            { w1: a as tf.Tensor4D, w2: b as tf.Tensor4D, w3: d as tf.Tensor4D, alpha: al as tf.Tensor1D },
            c.eps,
          );
        const xs = [s, w.w1, w.w2, w.w3, w.alpha];
        assertClose(await f(s, w.w1, w.w2, w.w3, w.alpha).data(), [c.loss], `${c.name} loss`);
        const got = tf.grads(f)(xs);
        const names = ['student', 'w1', 'w2', 'w3', 'alpha'];
        for (const [i, g] of grads.entries())
          assertClose(await got[i]!.data(), await g.data(), `${c.name} d / d ${names[i]}`);
      });
    }
  });
}

describe('VID descriptor', () => {
  const data = { numExamples: 1, numClasses: 10, batchSize: 8, seed: 0 };
  const stages = ['stage1', 'stage2', 'stage3'] as const;

  it('defaults (initial variance 5, eps 1e-5); one regressor per stage sized from the taps', async () => {
    await tf.setBackend('native');
    const cfg = vid.schema.parse({});
    assert.deepEqual(cfg, { initVariance: 5, eps: 1e-5 });
    assert.throws(() => vid.schema.parse({ init_pred_var: 5 }));
    const shapes = { stage1: [8, 8, 4], stage2: [4, 4, 8], stage3: [2, 2, 16] };
    const tshapes = { stage1: [8, 8, 6], stage2: [4, 4, 12], stage3: [2, 2, 24] };
    const parts = vid.parts!({ student: shapes, teacher: tshapes }, cfg, data);
    const w = vidWeights(parts.stage3);
    assert.deepEqual(w.w1.shape, [1, 1, 16, 24]);
    assert.deepEqual(w.w2.shape, [1, 1, 24, 24], 'middle width = teacher channels, as RepDistiller');
    const variance = tf.add(tf.softplus(w.alpha), 1e-5);
    assertClose(await variance.data(), new Array(24).fill(5), 'initial variance');
  });

  it('through the descriptor: the sum of the three pairs, each equal to the fixture', async () => {
    await tf.setBackend('native');
    const loaded = stages.map((_, i) => load(cases[i % cases.length]!));
    const shapeOf = (x: tf.Tensor) => x.shape.slice(1);
    const parts = vid.parts!(
      {
        student: Object.fromEntries(stages.map((r, i) => [r, shapeOf(loaded[i]!.s)])) as never,
        teacher: Object.fromEntries(stages.map((r, i) => [r, shapeOf(loaded[i]!.t)])) as never,
      },
      vid.schema.parse({}),
      data,
    );
    for (const [i, r] of stages.entries()) {
      const live = vidWeights(parts[r]);
      for (const k of ['w1', 'w2', 'w3', 'alpha'] as const) (live[k] as tf.Variable).assign(loaded[i]!.w[k]);
    }
    const n = loaded.map((l) => l.s.shape[0]);
    assert.ok(
      n.every((x) => x === n[0]),
      'fixture cases share the batch size',
    );
    const logits = tf.zeros([n[0]!, 10]) as tf.Tensor2D;
    const feats = (side: 's' | 't') => Object.fromEntries(stages.map((r, i) => [r, loaded[i]![side]]));
    const value = vid.loss({
      config: vid.schema.parse({}),
      student: { logits, features: feats('s') as never },
      teacher: { logits, features: feats('t') as never },
      labels: tf.zeros([n[0]!], 'int32') as tf.Tensor1D,
      epoch: 0,
      indices: new Uint32Array(n[0]!),
      parts,
    });
    const want = stages.reduce((a, _, i) => a + cases[i % cases.length]!.loss, 0);
    assertClose(await value.data(), [want], 'sum over stages');
  });

  it('bad inputs name the method and the shapes', () => {
    const w = {
      w1: tf.zeros([1, 1, 3, 2]),
      w2: tf.zeros([1, 1, 2, 2]),
      w3: tf.zeros([1, 1, 2, 2]),
      alpha: tf.zeros([2]),
    } as never;
    assert.throws(
      () => vidPairLoss(tf.zeros([1, 2, 2, 4]), tf.zeros([1, 2, 2, 2]), w, 1e-5),
      /vidLoss: regressor maps 3 to 2 channels, features have 4 \(student\) and 2 \(teacher\)/,
    );
    assert.throws(
      () => vidPairLoss(tf.zeros([1, 2, 2, 3]), tf.zeros([2, 2, 2, 2]), w, 1e-5),
      /vidLoss: expected feature maps \[N, H, W, C\] with one batch size, got \[1, 2, 2, 3\], \[2, 2, 2, 2\]/,
    );
    assert.throws(
      () => vidLoss([tf.zeros([1, 2, 2, 3])], [], [w], 1e-5),
      /vidLoss: expected as many student maps as teacher maps and regressors \(at least one\), got 1, 0 and 1/,
    );
  });
});
