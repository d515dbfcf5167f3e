import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkExact, SPECIAL } from './exact.js';
import { checkParity, nativeRuns, randTensor, requireNative, tf } from './parity.js';

describe('AddN: native vs cpu', () => {
  requireNative();
  // 1 input, a few, and more than one native call takes (31 per call).
  for (const count of [1, 2, 5, 31, 32, 75]) {
    for (const shape of [[3, 7], [40001]]) {
      it(`${count} tensors of ${JSON.stringify(shape)}`, () => {
        const run = () => tf.addN(Array.from({ length: count }, (_, i) => randTensor(shape, i + 1)));
        // same additions in the same order in float: bit-equal
        checkExact(`addN ${count}`, run);
        tf.setBackend('native');
        assert.equal(
          nativeRuns('AddN', () => tf.tidy(run)),
          1,
        );
      });
    }
  }

  it('special values (-0 + -0 is +0, as cpu sums from +0)', () => {
    checkExact('addN special', () =>
      tf.addN([tf.tensor(SPECIAL), tf.tensor(SPECIAL.slice().reverse()), tf.tensor(SPECIAL)]),
    );
    checkExact('addN -0', () => tf.addN([tf.tensor([-0, -0]), tf.tensor([-0, 0])]));
  });

  it('gradient flows to every input', () => {
    checkParity('addN grads', () =>
      tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.square(tf.addN([a, b, c, a]))))([
        randTensor([4, 5], 1),
        randTensor([4, 5], 2),
        randTensor([4, 5], 3),
      ]),
    );
  });

  it('int32 runs the JS kernel', () => {
    const run = () => tf.addN([tf.tensor([1, 2], [2], 'int32'), tf.tensor([3, 4], [2], 'int32')]);
    checkParity('addN int32', run);
    tf.setBackend('native');
    assert.equal(
      nativeRuns('AddN', () => tf.tidy(run)),
      0,
    );
  });
});
