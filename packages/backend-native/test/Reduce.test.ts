import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkExact } from './exact.js';
import { checkParity, nativeRuns, rand, randTensor, requireNative, tf } from './parity.js';

// Every reduction here accumulates in double on both sides (tfjs sums in JS numbers, native in C++
// doubles), so even the long reductions (16384 rows) stay within 1e-5; only the order differs.

type Reduce = (x: tf.Tensor, axis: number[] | undefined, keepDims: boolean) => tf.Tensor;
const ops: { kernel: string; fn: Reduce; lo: number; hi: number }[] = [
  { kernel: 'Sum', fn: (x, a, k) => tf.sum(x, a, k), lo: -1, hi: 1 },
  { kernel: 'Mean', fn: (x, a, k) => tf.mean(x, a, k), lo: -1, hi: 1 },
  { kernel: 'Max', fn: (x, a, k) => tf.max(x, a, k), lo: -1, hi: 1 },
  { kernel: 'Min', fn: (x, a, k) => tf.min(x, a, k), lo: -1, hi: 1 },
  // factors near 1 so that products of up to ~200 values neither underflow nor overflow
  { kernel: 'Prod', fn: (x, a, k) => tf.prod(x, a, k), lo: 0.9, hi: 1.1 },
];

// Odd sizes and size-1 dims at every position, ranks 1..5.
const shapes: number[][] = [
  [7],
  [1],
  [5, 3],
  [1, 9],
  [3, 1, 4],
  [4, 5, 6],
  [2, 3, 1, 5],
  [3, 1, 2, 4, 3],
  [2, 3, 2, 5, 3],
];

/** Every subset of the axes as a list, plus undefined (all axes). */
function axisPatterns(rank: number): (number[] | undefined)[] {
  const out: (number[] | undefined)[] = [undefined];
  for (let m = 0; m < 1 << rank; m++) out.push([...Array(rank).keys()].filter((i) => m & (1 << i)));
  return out;
}

/** The same axes written negatively (counted from the end) in reverse order, e.g. [0, 2] -> [-1, -3]. */
function negated(axes: number[], rank: number): number[] {
  return axes.map((a) => a - rank).reverse();
}

describe('reductions (Sum, Mean, Max, Min, Prod): native vs cpu', () => {
  requireNative();
  for (const op of ops) {
    it(`${op.kernel}: every axes pattern (single, adjacent, non-adjacent, all, negative) x keepDims`, () => {
      let cases = 0;
      for (const [si, shape] of shapes.entries()) {
        for (const axes of axisPatterns(shape.length)) {
          for (const keepDims of [false, true]) {
            const variants =
              axes === undefined || axes.length === 0 ? [axes] : [axes, negated(axes, shape.length)];
            for (const a of variants) {
              const what = `${op.kernel} ${JSON.stringify(shape)} axis ${JSON.stringify(a)} keep ${keepDims}`;
              const runs = nativeRuns(op.kernel, () =>
                checkParity(what, () => op.fn(randTensor(shape, 100 + si, op.lo, op.hi), a, keepDims)),
              );
              assert.equal(runs, 1, `${what}: native path ran ${runs} times`);
              cases++;
            }
          }
        }
      }
      assert.ok(cases > 400);
    });

    // tfjs 4.22's Prod gradient fails on every backend ("permutedX.reshape is not a function").
    if (op.kernel === 'Prod') continue;
    it(`${op.kernel}: gradient through tf.grads`, () => {
      for (const [shape, axes] of [
        [[4, 5, 6], [1]],
        [
          [3, 4, 5, 2],
          [0, 2],
        ],
        [[6, 7], undefined],
        [[2, 3, 4], [-1]],
      ] as [number[], number[] | undefined][]) {
        checkParity(`${op.kernel} grad ${JSON.stringify(shape)} ${JSON.stringify(axes)}`, () =>
          tf.grads((x: tf.Tensor) => tf.sum(tf.square(op.fn(x, axes, false))))([
            randTensor(shape, 7, op.lo, op.hi),
          ]),
        );
      }
    });
  }

  // Shapes that take the multi-threaded paths (>= 2^18 elements, reduce_common.cc): split R ([R, inner]
  // with few columns, one long row), several column blocks (inner > 512), many rows, and the
  // transposing path for non-adjacent axes. The first is a conv layer's bias gradient (16384 rows).
  const large: [number[], number[]][] = [
    [
      [16, 32, 32, 64],
      [0, 1, 2],
    ],
    [[100003, 3], [0]],
    [[400003], [0]],
    [[3, 100001], [1]],
    [[2, 301, 601], [1]],
    [[8003, 37], [1]],
    [
      [64, 65, 41],
      [0, 2],
    ],
    [
      [7, 9, 11, 13, 5],
      [1, 3],
    ],
  ];
  for (const [shape, axes] of large) {
    it(`large ${JSON.stringify(shape)} over ${JSON.stringify(axes)}: every op`, () => {
      for (const op of ops) {
        if (op.kernel === 'Prod') continue; // a product of thousands of factors over/underflows
        const runs = nativeRuns(op.kernel, () =>
          checkParity(`${op.kernel} ${JSON.stringify(shape)}`, () =>
            op.fn(randTensor(shape, 3, op.lo, op.hi), axes, false),
          ),
        );
        assert.equal(runs, 1);
      }
    });
  }

  // Max and Min select an input value, so they must match cpu bit for bit (checkExact), NaN included.
  it('Max/Min propagate NaN like cpu (NaN first, in the middle, in a later chunk) and handle +-Infinity', () => {
    const shape = [6, 50000];
    const v = rand(6 * 50000, 11);
    v[0] = Number.NaN; // first element of row 0
    v[50000 + 123] = Number.NaN; // middle of row 1
    v[2 * 50000 + 49999] = Number.NaN; // last of row 2
    v[3 * 50000 + 10] = Number.POSITIVE_INFINITY;
    v[4 * 50000 + 10] = Number.NEGATIVE_INFINITY;
    for (const kernel of ['Max', 'Min']) {
      const op = ops.find((o) => o.kernel === kernel)!;
      for (const axes of [[1], [0], undefined] as (number[] | undefined)[]) {
        const runs = nativeRuns(kernel, () =>
          checkExact(`${kernel} NaN ${JSON.stringify(axes)}`, () => op.fn(tf.tensor(v, shape), axes, false)),
        );
        assert.equal(runs, 1);
      }
    }
    // a NaN in the second half of one long column, which the parallel [R, inner] path gives to
    // another thread than the first half
    const c = rand(150000 * 2, 12);
    c[2 * 100000 + 1] = Number.NaN;
    checkExact('Max column NaN', () => tf.max(tf.tensor(c, [150000, 2]), 0));
    checkExact('Min all -Infinity', () => tf.min(tf.fill([3, 4], Number.NEGATIVE_INFINITY), 1));
  });

  it('non-float32 inputs fall back to the cpu kernel', () => {
    const x = () => tf.tensor([1, 2, 3, 4, 5, 6], [2, 3], 'int32');
    assert.equal(
      nativeRuns('Sum', () => checkParity('int32 sum', () => tf.sum(x(), 1))),
      0,
    );
    assert.equal(
      nativeRuns('Max', () => checkParity('int32 max', () => tf.max(x(), 0))),
      0,
    );
    assert.equal(
      nativeRuns('Mean', () => checkParity('int32 mean', () => tf.mean(x()))),
      0,
    );
    assert.equal(
      nativeRuns('ArgMax', () => checkParity('int32 argMax', () => tf.argMax(x(), 1))),
      0,
    );
  });

  it('a scalar reduces to itself', () => {
    for (const op of ops) checkParity(`${op.kernel} scalar`, () => op.fn(tf.scalar(1.5), undefined, false));
  });
});

describe('ArgMax: native vs cpu', () => {
  requireNative();
  it('every axis (positive and negative) of ranks 1..5, with ties', () => {
    for (const [si, shape] of shapes.entries()) {
      for (let axis = -shape.length; axis < shape.length; axis++) {
        // values from a set of 5 so that ties are frequent: tfjs returns the first maximum
        const v = rand(
          shape.reduce((a, b) => a * b, 1),
          300 + si,
        ).map((x) => Math.round(x * 2));
        const runs = nativeRuns('ArgMax', () =>
          checkParity(`argMax ${JSON.stringify(shape)} axis ${axis}`, () =>
            tf.argMax(tf.tensor(v, shape), axis),
          ),
        );
        assert.equal(runs, 1);
      }
    }
  });

  it('NaN at index 0 wins, later NaNs are skipped; large parallel shapes', () => {
    const v = rand(4 * 7, 5);
    v[0] = Number.NaN;
    v[7 + 3] = Number.NaN;
    v[3 * 7 + 6] = Number.NaN;
    checkParity('argMax NaN rows', () => tf.argMax(tf.tensor(v, [4, 7]), 1));
    checkParity('argMax NaN cols', () => tf.argMax(tf.tensor(v, [4, 7]), 0));
    for (const [shape, axis] of [
      [[128, 10], 1],
      [[3001, 700], 0],
      [[40, 2001], 1],
      [[8, 300, 65], 1],
    ] as [number[], number][]) {
      const runs = nativeRuns('ArgMax', () =>
        checkParity(`argMax ${JSON.stringify(shape)}`, () => tf.argMax(randTensor(shape, 9), axis)),
      );
      assert.equal(runs, 1);
    }
  });
});
