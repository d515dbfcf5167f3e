import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { native } from '../src/binding.js';
import { checkParity, nativeRuns, randTensor, requireNative, tf } from './parity.js';

// Data movement is exact: every case compares bit for bit (rtol 0).
describe('Slice, SplitV, Concat, PadV2, Tile: native vs cpu', () => {
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
  // SplitV: tf.split, and the gradient of a channel concat (ShuffleNetV2's blocks).
  const splits: [number[], number[] | number, number][] = [
    [[7], [2, 5], 0],
    [[4, 6, 6, 12], [5, 7], 3],
    [[4, 6, 6, 12], 3, -1],
    [[3, 8, 5], [2, -1, 1], 1],
    [[32, 16, 16, 116], 2, 3],
  ];
  for (const [shape, split, axis] of splits) {
    it(`SplitV ${JSON.stringify(shape)} into ${JSON.stringify(split)} on axis ${axis}`, () => {
      const run = () => tf.split(randTensor(shape, 2), split, axis);
      checkParity('split', run, 0);
      assert.equal(
        nativeRuns('SplitV', () => tf.tidy(run)),
        1,
      );
    });
  }
  const concats: [number[][], number][] = [
    [[[7], [3]], 0],
    [
      [
        [4, 6, 6, 5],
        [4, 6, 6, 7],
      ],
      3,
    ],
    [
      [
        [2, 3, 4],
        [2, 1, 4],
        [2, 0, 4],
        [2, 5, 4],
      ],
      -2,
    ],
    [
      [
        [32, 16, 16, 58],
        [32, 16, 16, 58],
      ],
      3,
    ],
  ];
  for (const [shapes, axis] of concats) {
    it(`Concat ${JSON.stringify(shapes)} on axis ${axis}`, () => {
      const run = () =>
        tf.concat(
          shapes.map((s, i) => randTensor(s, 10 + i)),
          axis,
        );
      checkParity('concat', run, 0);
      assert.equal(
        nativeRuns('Concat', () => tf.tidy(run)),
        1,
      );
    });
  }
  it('the gradient of a channel concat runs the native SplitV, equal to cpu', () => {
    const run = () => {
      const a = randTensor([2, 3, 3, 4], 3);
      const b = randTensor([2, 3, 3, 5], 4);
      const dy = randTensor([2, 3, 3, 9], 5);
      const g = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.mul(tf.concat([p, q], 3), dy));
      return g([a, b]);
    };
    checkParity('concat grad', run, 0);
    assert.ok(nativeRuns('SplitV', () => tf.tidy(() => run())) >= 1);
  });
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

// The addon itself refuses boxes outside its arrays (tfjs checks first on the normal path; these
// calls go straight to the binding, as a stale or buggy caller would): a JS error, no read or
// write past a buffer.
describe('Slice, PadV2, Tile: the addon checks every box before copying', () => {
  requireNative();
  const i32 = (...v: number[]) => Int32Array.from(v);
  it('Slice out of bounds, negative begin or size, rank mismatch', () => {
    const x = new Float32Array(9);
    assert.throws(
      () => native!.Slice(x, new Float32Array(100), i32(3, 3), i32(1, 1), i32(10, 10)),
      /Slice: source box \[1, \+10\) outside size 3 at dim 0/,
    );
    assert.throws(
      () => native!.Slice(x, new Float32Array(4), i32(3, 3), i32(-1, 0), i32(2, 2)),
      /Slice: source box \[-1, \+2\) outside size 3/,
    );
    assert.throws(
      () => native!.Slice(x, new Float32Array(1), i32(3, 3), i32(0, 0), i32(-1, -1)),
      /Slice: argument 4 \(size\): dim 0 is negative \(-1\)/,
    );
    assert.throws(
      () => native!.Slice(x, new Float32Array(3), i32(3, 3), i32(0), i32(3)),
      /Slice: argument 4 \(size\) has rank 1, expected 2/,
    );
    const out = new Float32Array(4);
    native!.Slice(
      Float32Array.from({ length: 9 }, (_, i) => i),
      out,
      i32(3, 3),
      i32(1, 1),
      i32(2, 2),
    );
    assert.deepEqual([...out], [4, 5, 7, 8]);
  });
  it('PadV2 with an output smaller than the input, or negative sizes', () => {
    const x = new Float32Array(9);
    assert.throws(
      () => native!.PadV2(x, new Float32Array(4), i32(3, 3), i32(0, 0), i32(2, 2), 0),
      /PadV2: argument 3 \(before\)\[0\] is 0, outside \[0, -1\]/,
    );
    assert.throws(
      () => native!.PadV2(x, new Float32Array(25), i32(3, 3), i32(3, 0), i32(5, 5), 0),
      /PadV2: argument 3 \(before\)\[0\] is 3, outside \[0, 2\]/,
    );
    assert.throws(
      () => native!.PadV2(x, new Float32Array(9), i32(3, 3), i32(0, 0), i32(3, -3), 0),
      /PadV2: argument 4 \(outShape\): dim 1 is negative \(-3\)/,
    );
  });
  it('Tile with an output that is not whole repeats of the input', () => {
    const x = new Float32Array(6);
    assert.throws(
      () => native!.Tile(x, new Float32Array(14), i32(2, 3), i32(2, 7)),
      /Tile: argument 3 \(outShape\)\[1\] = 7 is not a multiple of shape\[1\] = 3/,
    );
    assert.throws(
      () => native!.Tile(x, new Float32Array(6), i32(2, 3), i32(6)),
      /Tile: argument 3 \(outShape\) has rank 1, expected 2/,
    );
  });
});
