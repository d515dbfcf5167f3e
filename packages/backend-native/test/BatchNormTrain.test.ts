/**
 * RetortBatchNormTrain / RetortBatchNormTrainGrad: the JS cpu kernels against PyTorch's BatchNorm2d
 * (fixtures/bn_train.json, made by fixtures/make_bn_fixture.py) and against tfjs's own composite
 * (moments + batchNorm, differentiated by tfjs); the native kernels against the JS ones.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { batchNormTrain } from '../src/index.js';
import { assertClose, checkParity, nativeRuns, randTensor, requireNative, runOn, tf } from './parity.js';

interface Case {
  shape: [number, number, number, number];
  x: number[];
  w: number[];
  gamma: number[];
  beta: number[];
  runMean: number[];
  runVar: number[];
  y: number[];
  dx: number[];
  dgamma: number[];
  dbeta: number[];
  newRunMean: number[];
  newRunVar: number[];
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/bn_train.json', import.meta.url), 'utf8')) as {
  eps: number;
  momentum: number;
  cases: Case[];
};

/** y, running stats and the gradients of sum(y * w) with respect to x, gamma, beta. */
function bnAll(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  rm: tf.Tensor,
  rv: tf.Tensor,
  w: tf.Tensor,
  eps = 1e-5,
  momentum = 0.9,
): tf.Tensor[] {
  const attrs = { epsilon: eps, momentum };
  const r = batchNormTrain(x, gamma, beta, rm, rv, attrs);
  const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(batchNormTrain(a, g, b, rm, rv, attrs).y, w)),
  )([x, gamma, beta]);
  return [r.y, r.mean, r.invStd, r.runMean, r.runVar, ...grads];
}

describe('RetortBatchNormTrain', () => {
  for (const backend of ['cpu', 'native']) {
    it(`matches PyTorch BatchNorm2d (train mode) on ${backend}`, () => {
      for (const c of fixture.cases) {
        const ch = c.shape[3];
        const out = runOn(backend, () =>
          bnAll(
            tf.tensor(c.x, c.shape),
            tf.tensor(c.gamma),
            tf.tensor(c.beta),
            tf.tensor(c.runMean),
            tf.tensor(c.runVar),
            tf.tensor(c.w, c.shape),
            fixture.eps,
            fixture.momentum,
          ),
        );
        const what = `[${c.shape.join(',')}] ${backend}`;
        const f = (a: number[]) => Float32Array.from(a);
        assertClose(out[0]!.values, f(c.y), 1e-5, `${what} y`);
        assertClose(out[3]!.values, f(c.newRunMean), 1e-5, `${what} running mean`);
        assertClose(out[4]!.values, f(c.newRunVar), 1e-5, `${what} running var`);
        assertClose(out[5]!.values, f(c.dx), 1e-5, `${what} dx`);
        assertClose(out[6]!.values, f(c.dgamma), 1e-5, `${what} dgamma`);
        assertClose(out[7]!.values, f(c.dbeta), 1e-5, `${what} dbeta`);
        assert.equal(out[1]!.shape[0], ch);
      }
    });
  }

  it('forward and gradients equal tfjs composite moments + batchNorm (cpu)', () => {
    const shape = [4, 5, 3, 6];
    const mk = () => [
      randTensor(shape, 1, -2, 3),
      randTensor([6], 2, 0.5, 1.5),
      randTensor([6], 3),
      randTensor(shape, 4),
    ];
    const ours = runOn('cpu', () => {
      const [x, g, b, w] = mk() as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
      const all = bnAll(x, g, b, tf.zeros([6]), tf.ones([6]), w);
      return [all[0]!, ...all.slice(5)];
    });
    const ref = runOn('cpu', () => {
      const [x, g, b, w] = mk() as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
      const f = (a: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
        const { mean, variance } = tf.moments(a, [0, 1, 2]);
        return tf.batchNorm(a, mean, variance, bb, gg, 1e-5);
      };
      return [
        f(x, g, b),
        ...tf.grads((a: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(f(a, gg, bb), w)))([
          x,
          g,
          b,
        ]),
      ];
    });
    for (let i = 0; i < ref.length; i++) assertClose(ours[i]!.values, ref[i]!.values, 1e-5, `output ${i}`);
  });

  it('native equals the JS kernels: forward, running stats, gradients; native path runs', () => {
    requireNative();
    const shapes: number[][] = [
      [2, 3, 5, 7],
      [1, 1, 1, 4],
      [64, 8, 8, 16], // large enough for the threaded path
      [17, 33],
      [128, 4, 4, 64],
    ];
    for (const [i, shape] of shapes.entries()) {
      const c = shape[shape.length - 1]!;
      const runs = nativeRuns('RetortBatchNormTrainGrad', () =>
        checkParity(`[${shape.join(',')}]`, () =>
          bnAll(
            randTensor(shape, 10 + i, -1, 4),
            randTensor([c], 20 + i, 0.5, 2),
            randTensor([c], 30 + i),
            randTensor([c], 40 + i),
            randTensor([c], 50 + i, 0.5, 1.5),
            randTensor(shape, 60 + i),
          ),
        ),
      );
      assert.ok(runs >= 1, 'native gradient kernel ran');
    }
  });

  it('rejects a parameter of the wrong length, naming it', () => {
    tf.setBackend('native');
    assert.throws(
      () =>
        batchNormTrain(tf.ones([2, 3]), tf.ones([4]), tf.zeros([3]), tf.zeros([3]), tf.ones([3]), {
          epsilon: 1e-5,
          momentum: 0.9,
        }),
      /gamma must have shape \[3\]/,
    );
  });
});
