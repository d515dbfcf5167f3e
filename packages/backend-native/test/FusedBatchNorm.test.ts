import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkParityNonFinite } from './nan_parity.js';
import { checkParity, nativeRuns, randTensor, requireNative, tf } from './parity.js';

// Shapes of x and of the parameters (mean, variance, offset, scale; null = not given) and whether the
// native path is expected: per channel (length C), per element, scalar; others fall back.
interface Case {
  x: number[];
  p: (number[] | null)[];
  native: boolean;
  eps?: number;
}
/** The same shape for all four parameters. */
const all = (s: number[]): number[][] => [s, s, s, s];
const cases: Case[] = [
  { x: [2, 5, 7, 6], p: all([6]), native: true },
  { x: [2, 5, 7, 6], p: [[6], [6], null, null], native: true },
  { x: [2, 5, 7, 6], p: [[6], [6], [6], null], native: true, eps: 1e-5 },
  { x: [2, 5, 7, 6], p: [[6], [6], null, [6]], native: true },
  { x: [3, 4, 5, 3], p: all([3, 4, 5, 3]), native: true },
  {
    x: [3, 4, 5, 3],
    p: [
      [1, 1, 1, 3],
      [3, 4, 5, 3],
      [1, 1, 1, 3],
      [3, 4, 5, 3],
    ],
    native: true,
  },
  { x: [9, 7], p: all([7]), native: true },
  { x: [11], p: all([11]), native: true },
  { x: [4, 3, 3, 1], p: all([1]), native: true },
  { x: [16, 32, 32, 8], p: all([8]), native: true },
  // per (W, C) parameters: the cpu kernel's cyclic indexing, not a native layout
  { x: [2, 3, 4, 5], p: all([4, 5]), native: false },
];

function params(c: Case, seed: number): (tf.Tensor | undefined)[] {
  // variance positive; the others anywhere
  return c.p.map((s, i) =>
    s === null ? undefined : randTensor(s, seed + i, i === 1 ? 0.1 : -1, i === 1 ? 2 : 1),
  );
}

function bn(x: tf.Tensor, p: (tf.Tensor | undefined)[], eps: number | undefined): tf.Tensor {
  const [m, v, o, s] = p;
  return tf.batchNorm(x, m!, v!, o, s, eps);
}

describe('FusedBatchNorm: native vs cpu', () => {
  requireNative();
  for (const [ci, c] of cases.entries()) {
    const label = `x ${JSON.stringify(c.x)} params ${JSON.stringify(c.p)}`;
    it(`forward ${label}`, () => {
      const run = () => bn(randTensor(c.x, 100 + ci), params(c, 200 + 10 * ci), c.eps);
      checkParity(label, run);
      tf.setBackend('native');
      assert.equal(
        nativeRuns('FusedBatchNorm', () => tf.tidy(run)),
        c.native ? 1 : 0,
      );
    });
  }

  it('gradients of x, mean, variance, offset and scale', () => {
    for (const c of [cases[0]!, cases[4]!, cases[6]!]) {
      checkParity(`grads ${JSON.stringify(c.x)}`, () => {
        const p = params(c, 300) as tf.Tensor[];
        const w = randTensor(c.x, 9);
        return tf.grads((x: tf.Tensor, m: tf.Tensor, v: tf.Tensor, o: tf.Tensor, s: tf.Tensor) =>
          tf.sum(tf.mul(tf.batchNorm(x, m, v, o, s, 1e-3), w)),
        )([randTensor(c.x, 301), ...p]);
      });
    }
  });

  it('NaN and infinities in x and zero variance', () => {
    checkParityNonFinite('batchnorm special', () =>
      tf.batchNorm(
        tf.tensor([Number.NaN, Infinity, -Infinity, 0, 1, -2], [2, 3]),
        tf.tensor([0, 1, Infinity]),
        tf.tensor([0, 1, 2]),
        undefined,
        undefined,
        0,
      ),
    );
  });
});
