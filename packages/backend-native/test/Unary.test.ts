import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkExact, SPECIAL } from './exact.js';
import { checkParityNonFinite } from './nan_parity.js';
import { checkParity, nativeRuns, randTensor, requireNative, tf } from './parity.js';

type Unary = (x: tf.Tensor) => tf.Tensor;
// lo/hi: input range for the random cases (the domain of Log, Sqrt and Rsqrt, and of their gradients).
// exact: computed with the same rounding as JS on every input; the others go through a libm function
// (exp, log, tanh, expm1) that may round differently from V8's, so special values are compared as
// NaN/infinity positions plus 1e-5 elsewhere.
const ops: { kernel: string; fn: Unary; lo: number; hi: number; exact: boolean }[] = [
  { kernel: 'Relu', fn: (x) => tf.relu(x), lo: -1, hi: 1, exact: true },
  { kernel: 'Relu6', fn: (x) => tf.relu6(x), lo: -8, hi: 8, exact: true },
  { kernel: 'Step', fn: (x) => tf.step(x, 0.3), lo: -1, hi: 1, exact: true },
  { kernel: 'LeakyRelu', fn: (x) => tf.leakyRelu(x, 0.2), lo: -1, hi: 1, exact: true },
  { kernel: 'Elu', fn: (x) => tf.elu(x), lo: -3, hi: 3, exact: false },
  { kernel: 'Exp', fn: (x) => tf.exp(x), lo: -5, hi: 5, exact: false },
  { kernel: 'Log', fn: (x) => tf.log(x), lo: 0.01, hi: 10, exact: false },
  { kernel: 'Neg', fn: (x) => tf.neg(x), lo: -1, hi: 1, exact: true },
  { kernel: 'Square', fn: (x) => tf.square(x), lo: -3, hi: 3, exact: true },
  { kernel: 'Sqrt', fn: (x) => tf.sqrt(x), lo: 0.01, hi: 10, exact: true },
  { kernel: 'Rsqrt', fn: (x) => tf.rsqrt(x), lo: 0.01, hi: 10, exact: true },
  { kernel: 'Reciprocal', fn: (x) => tf.reciprocal(x), lo: 0.1, hi: 3, exact: true },
  { kernel: 'Abs', fn: (x) => tf.abs(x), lo: -1, hi: 1, exact: true },
  { kernel: 'Sigmoid', fn: (x) => tf.sigmoid(x), lo: -6, hi: 6, exact: false },
  { kernel: 'Tanh', fn: (x) => tf.tanh(x), lo: -4, hi: 4, exact: false },
];

// Scalar, odd sizes, rank 4, and sizes above the parallel threshold.
const shapes: number[][] = [[], [1], [7], [3, 5], [2, 3, 4, 5], [40001], [65, 1031]];

describe('unary kernels: native vs cpu', () => {
  requireNative();
  for (const op of ops) {
    it(`${op.kernel}: forward on every shape (native path runs)`, () => {
      for (const [si, shape] of shapes.entries()) {
        const what = `${op.kernel} ${JSON.stringify(shape)}`;
        const run = () => op.fn(randTensor(shape, 30 + si, op.lo, op.hi));
        checkParity(what, run);
        tf.setBackend('native');
        assert.equal(
          nativeRuns(op.kernel, () => tf.tidy(run)),
          1,
          `${what}: native path did not run`,
        );
      }
    });

    it(`${op.kernel}: gradient through tf.grads`, () => {
      checkParity(`${op.kernel} grad`, () =>
        tf.grads((x: tf.Tensor) => tf.sum(tf.mul(op.fn(x), randTensor(x.shape, 9))))([
          randTensor([4, 6, 7], 3, op.lo, op.hi),
        ]),
      );
    });

    it(`${op.kernel}: NaN, infinities, signed zeros and overflow as cpu`, () => {
      const run = () => op.fn(tf.tensor([...SPECIAL, 88, -88, 89, -89, 1e-7, -1e-7]));
      if (op.exact) checkExact(`${op.kernel} special values`, run);
      else checkParityNonFinite(`${op.kernel} special values`, run);
    });
  }

  it('Relu of int32 runs the JS kernel', () => {
    const run = () => tf.relu(tf.tensor([-2, 0, 3], [3], 'int32'));
    checkParity('relu int32', run);
    tf.setBackend('native');
    assert.equal(
      nativeRuns('Relu', () => tf.tidy(run)),
      0,
    );
  });

  it('Step with alpha 0 (the Relu gradient mask) and a non-float alpha', () => {
    for (const alpha of [0, -1.7, 0.1]) checkExact(`step ${alpha}`, () => tf.step(tf.tensor(SPECIAL), alpha));
  });
});
