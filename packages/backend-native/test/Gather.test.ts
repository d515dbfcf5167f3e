/**
 * GatherV2 and UnsortedSegmentSum: native against tfjs's cpu kernels (values and the gradients tfjs
 * builds from them), for several axes and shapes, repeated and empty selections; out-of-range
 * indices keep tfjs's own error.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkParity, nativeRuns, rand, randTensor, requireNative, tf } from './parity.js';

const ints = (n: number, hi: number, seed: number) =>
  Int32Array.from(rand(n, seed, 0, hi), (v) => Math.min(hi - 1, Math.floor(v)));

describe('GatherV2', () => {
  for (const [shape, axis, nIdx] of [
    [[60, 16], 0, 300],
    [[5, 7, 3], 1, 9],
    [[4, 6], 1, 2],
    [[11], 0, 11],
    [[2, 3, 4, 5], 3, 7],
  ] as const) {
    it(`x [${shape}], axis ${axis}, ${nIdx} indices: native equals cpu, with the gradient`, () => {
      requireNative();
      const idx = ints(nIdx, shape[axis]!, 3);
      const ran = nativeRuns('GatherV2', () =>
        checkParity(
          'gather',
          () => {
            const x = randTensor([...shape], 1);
            const i = tf.tensor1d(idx, 'int32');
            const w = randTensor([...shape.slice(0, axis), nIdx, ...shape.slice(axis + 1)], 2);
            const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.gather(a, i, axis), w)))(x);
            return [tf.gather(x, i, axis), g];
          },
          // the gather is an exact copy; its gradient (a segment sum) adds in another order
          1e-6,
        ),
      );
      assert.ok(ran > 0, 'GatherV2 ran on the JS fallback');
    });
  }

  it('2-D indices, and an out-of-range index keeps tfjs error', () => {
    checkParity(
      'gather 2-D indices',
      () => tf.gather(randTensor([9, 4], 1), tf.tensor2d(ints(6, 9, 2), [2, 3], 'int32')),
      0,
    );
    tf.setBackend('native');
    assert.throws(
      () => tf.gather(tf.zeros([3, 2]), tf.tensor1d([3], 'int32')),
      /GatherV2: the index value 3 is not in \[0, 2\]/,
    );
  });
});

describe('UnsortedSegmentSum', () => {
  for (const [shape, segments] of [
    [[500], 16],
    [[300, 8], 40],
    [[20, 3, 2], 5],
  ] as const) {
    it(`x [${shape}] into ${segments} segments (ids with repeats, one out of range): native equals cpu`, () => {
      requireNative();
      const ids = ints(shape[0]!, segments, 4);
      ids[0] = segments + 3; // ignored by both
      const ran = nativeRuns('UnsortedSegmentSum', () =>
        checkParity(
          'segment sum',
          () => tf.unsortedSegmentSum(randTensor([...shape], 1), tf.tensor1d(ids, 'int32'), segments),
          1e-5,
        ),
      );
      assert.ok(ran > 0, 'UnsortedSegmentSum ran on the JS fallback');
    });
  }
});
