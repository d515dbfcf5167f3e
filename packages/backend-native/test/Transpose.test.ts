import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkParity, nativeRuns, randTensor, requireNative, tf } from './parity.js';

// A transpose copies bits, so native and cpu must agree exactly (rtol 0).

/** Every permutation of 0..n-1. */
function permutations(n: number): number[][] {
  if (n === 1) return [[0]];
  const out: number[][] = [];
  for (const p of permutations(n - 1))
    for (let i = 0; i < n; i++) out.push([...p.slice(0, i), n - 1, ...p.slice(i)]);
  return out;
}

function check(shape: number[], perm: number[], seed = 1): void {
  const what = `transpose ${JSON.stringify(shape)} perm ${JSON.stringify(perm)}`;
  const runs = nativeRuns('Transpose', () =>
    checkParity(what, () => tf.transpose(randTensor(shape, seed), perm), 0),
  );
  assert.equal(runs, 1, `${what}: native runs`);
}

describe('Transpose: native vs cpu', () => {
  requireNative();

  it('2-D: odd sizes, size-1 dims, tile edges, a large parallel one', () => {
    for (const shape of [
      [37, 53],
      [1, 7],
      [7, 1],
      [32, 32],
      [33, 65],
      [517, 300],
      [3, 30001],
    ])
      check(shape, [1, 0]);
  });

  it('every permutation of rank 3 and 4 (odd sizes, with and without size-1 dims)', () => {
    for (const shape of [
      [3, 5, 7],
      [1, 5, 7],
      [6, 1, 4],
      [35, 33, 34],
    ])
      for (const p of permutations(3)) check(shape, p);
    for (const shape of [
      [2, 3, 5, 7],
      [3, 1, 4, 1],
      [4, 6, 5, 33],
    ])
      for (const p of permutations(4)) check(shape, p);
  });

  it('ranks 5 and 6: every permutation of [2, 3, 1, 5, 4] and sampled rank-6 ones', () => {
    for (const p of permutations(5)) check([2, 3, 1, 5, 4], p);
    const p6 = permutations(6);
    for (let i = 0; i < p6.length; i += 37) check([2, 3, 4, 1, 3, 5], p6[i]!);
    check([16, 8, 8, 4, 3, 5], [5, 3, 1, 0, 2, 4]); // large enough for the threaded path
  });

  it('NHWC <-> NCHW on an activation-sized tensor', () => {
    check([8, 16, 16, 64], [0, 3, 1, 2]);
    check([8, 64, 16, 16], [0, 2, 3, 1]);
  });

  it('gradients: through transpose and through matmul with transposed operands', () => {
    checkParity(
      'transpose grad',
      () =>
        tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(tf.transpose(x, [2, 0, 1]), w)))([
          randTensor([3, 4, 5], 1),
          randTensor([5, 3, 4], 2),
        ]),
      0,
    );
    checkParity('matmul transposed grads', () =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.square(tf.matMul(tf.transpose(a) as tf.Tensor2D, b as tf.Tensor2D, false, true))),
      )([randTensor([7, 5], 3), randTensor([6, 7], 4)]),
    );
  });

  it('int32 falls back to the cpu kernel', () => {
    const runs = nativeRuns('Transpose', () =>
      checkParity('int32', () => tf.transpose(tf.tensor([1, 2, 3, 4, 5, 6], [2, 3], 'int32'))),
    );
    assert.equal(runs, 0);
  });
});
