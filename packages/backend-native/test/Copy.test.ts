import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkParity, nativeRuns, randTensor, requireNative, tf } from './parity.js';

// Data movement is exact: every case compares bit for bit (rtol 0).
describe('Slice, PadV2, Tile: native vs cpu', () => {
  requireNative();
  const slices: [number[], number[], number[]][] = [
    [[7], [2], [3]],
    [
      [5, 6],
      [1, 2],
      [3, -1],
    ],
    [
      [2, 9, 8, 5],
      [0, 1, 1, 0],
      [2, 7, 6, 5],
    ],
    [
      [3, 4, 5, 6, 2],
      [1, 0, 2, 1, 1],
      [2, 4, 2, 4, 1],
    ],
    [
      [128, 30, 30, 16],
      [0, 1, 1, 0],
      [128, 28, 28, 16],
    ],
  ];
  for (const [shape, begin, size] of slices) {
    it(`Slice ${JSON.stringify(shape)} begin ${JSON.stringify(begin)} size ${JSON.stringify(size)}`, () => {
      const run = () => tf.slice(randTensor(shape, 1), begin, size);
      checkParity('slice', run, 0);
      assert.equal(
        nativeRuns('Slice', () => tf.tidy(run)),
        1,
      );
    });
  }
  const pads: [number[], [number, number][], number][] = [
    [[5], [[2, 1]], 0],
    [
      [3, 4],
      [
        [0, 2],
        [1, 1],
      ],
      -1.5,
    ],
    [
      [2, 7, 7, 3],
      [
        [0, 0],
        [1, 1],
        [0, 1],
        [0, 0],
      ],
      0,
    ],
    [
      [128, 28, 28, 16],
      [
        [0, 0],
        [1, 1],
        [1, 1],
        [0, 0],
      ],
      0,
    ],
  ];
  for (const [shape, paddings, value] of pads) {
    it(`PadV2 ${JSON.stringify(shape)} ${JSON.stringify(paddings)} value ${value}, and its gradient (a Slice)`, () => {
      const run = () => tf.pad(randTensor(shape, 2), paddings, value);
      checkParity('pad', run, 0);
      assert.equal(
        nativeRuns('PadV2', () => tf.tidy(run)),
        1,
      );
      checkParity(
        'pad grad',
        () =>
          tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.pad(x, paddings, value), tf.pad(x, paddings, value))))(
            randTensor(shape, 3),
          ),
        1e-6,
      );
    });
  }
  const tiles: [number[], number[]][] = [
    [[3], [4]],
    [
      [2, 3],
      [2, 1],
    ],
    [
      [1, 1, 1, 8],
      [16, 5, 5, 1],
    ],
    [
      [2, 3, 1, 4],
      [1, 2, 3, 2],
    ],
    [
      [1, 1, 1, 64],
      [128, 16, 16, 1],
    ],
  ];
  for (const [shape, reps] of tiles) {
    it(`Tile ${JSON.stringify(shape)} reps ${JSON.stringify(reps)}`, () => {
      const run = () => tf.tile(randTensor(shape, 4), reps);
      checkParity('tile', run, 0);
      assert.equal(
        nativeRuns('Tile', () => tf.tidy(run)),
        1,
      );
    });
  }
});
