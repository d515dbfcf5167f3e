import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkExact } from './exact.js';
import { checkParity, nativeRuns, rand, randTensor, requireNative, tf } from './parity.js';

// Same order of operations as tfjs (max, exp(x - max), float sum, divide); only expf vs Math.exp
// rounding (<= 1 ulp) differs, well inside 1e-5.

function check(what: string, make: () => tf.Tensor, dim = -1): void {
  const runs = nativeRuns('Softmax', () => checkParity(what, () => tf.softmax(make(), dim)));
  assert.equal(runs, 1, `${what}: native runs`);
}

describe('Softmax: native vs cpu', () => {
  requireNative();

  it('ranks 1..5, odd sizes, size-1 dims, explicit last dim', () => {
    const shapes = [[7], [1], [128, 10], [3, 1], [1, 1], [2, 3, 5], [4, 3, 2, 17], [2, 2, 1, 2, 33]];
    for (const [i, s] of shapes.entries()) {
      check(`softmax ${JSON.stringify(s)}`, () => randTensor(s, 10 + i, -5, 5));
      check(
        `softmax ${JSON.stringify(s)} dim ${s.length - 1}`,
        () => randTensor(s, 20 + i, -5, 5),
        s.length - 1,
      );
    }
  });

  it('large logits need the max subtraction; a threaded batch', () => {
    check('softmax +-80', () => randTensor([64, 100], 3, -80, 80));
    check('softmax [300, 257]', () => randTensor([300, 257], 4, -10, 10));
  });

  it('NaN and infinities as in cpu', () => {
    const v = rand(5 * 6, 5, -3, 3);
    v[2] = Number.NaN; // row 0: all NaN
    v[6 + 1] = Number.NEGATIVE_INFINITY; // row 1: that entry 0
    v[12 + 4] = Number.POSITIVE_INFINITY; // row 2: NaN (inf - inf)
    for (let j = 0; j < 6; j++) v[18 + j] = Number.NEGATIVE_INFINITY; // row 3: all -inf -> NaN
    const x = () => tf.tensor(v, [5, 6]);
    // rows 0, 2, 3 are all NaN, bit for bit; rows 1 and 4 are finite (within 1e-5)
    const runs = nativeRuns('Softmax', () => {
      checkExact('softmax NaN rows', () => tf.gather(tf.softmax(x()), [0, 2, 3]));
      checkParity('softmax finite rows', () => tf.gather(tf.softmax(x()), [1, 4]));
    });
    assert.equal(runs, 2);
  });

  it('gradient through tf.grads (alone and inside softmax cross-entropy)', () => {
    checkParity('softmax grad', () =>
      tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(tf.softmax(x), w)))([
        randTensor([16, 10], 1, -3, 3),
        randTensor([16, 10], 2),
      ]),
    );
    checkParity('softmax grad rank 3', () =>
      tf.grads((x: tf.Tensor) => tf.sum(tf.square(tf.softmax(x))))([randTensor([3, 4, 9], 3, -3, 3)]),
    );
    checkParity('softmax cross-entropy grad', () =>
      tf.grads((x: tf.Tensor) => tf.losses.softmaxCrossEntropy(tf.oneHot([1, 3, 0, 9], 10), x))([
        randTensor([4, 10], 4, -3, 3),
      ]),
    );
  });
});
