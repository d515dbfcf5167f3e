import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkParity, nativeRuns, rand, randTensor, requireNative, tf } from './parity.js';

type Pad = 'same' | 'valid';
interface Case {
  x: [number, number, number, number];
  k: number | [number, number];
  s: number | [number, number];
  pad: Pad;
}

// batch 1, odd sizes, stride 2, same/valid, windows 2 and 3, 1x1, non-square windows and strides,
// overlapping windows, and C > 64 with a remainder (MaxPoolGrad works in blocks of 64 channels).
const cases: Case[] = [
  { x: [1, 5, 7, 3], k: 2, s: 2, pad: 'valid' },
  { x: [1, 5, 7, 3], k: 2, s: 2, pad: 'same' },
  { x: [2, 9, 8, 5], k: 3, s: 2, pad: 'same' },
  { x: [2, 7, 5, 3], k: 3, s: 2, pad: 'valid' },
  { x: [3, 6, 6, 4], k: 3, s: 1, pad: 'same' },
  { x: [1, 6, 6, 2], k: 2, s: 1, pad: 'valid' },
  { x: [1, 8, 7, 16], k: 1, s: 2, pad: 'valid' },
  { x: [2, 7, 9, 6], k: [2, 3], s: [1, 2], pad: 'same' },
  { x: [2, 9, 6, 5], k: [3, 1], s: [2, 1], pad: 'valid' },
  { x: [2, 10, 7, 70], k: 3, s: 2, pad: 'same' },
  { x: [1, 11, 11, 130], k: 2, s: 2, pad: 'valid' },
];

function label(c: Case): string {
  return `x${c.x.join('x')} k${c.k} s${c.s} ${c.pad}`;
}

const pools = {
  MaxPool: (x: tf.Tensor, c: Case) => tf.maxPool(x as tf.Tensor4D, c.k, c.s, c.pad),
  AvgPool: (x: tf.Tensor, c: Case) => tf.avgPool(x as tf.Tensor4D, c.k, c.s, c.pad),
};

/** sum(pool(x) * w) with random w, so that dy differs per output cell. */
function poolGrad(kind: keyof typeof pools, c: Case, x: tf.Tensor, seed: number): tf.Tensor {
  return tf.grad((t: tf.Tensor) => {
    const y = pools[kind](t, c);
    return tf.sum(tf.mul(y, randTensor(y.shape, seed)));
  })(x);
}

describe('MaxPool, AvgPool and their gradients: native vs cpu', () => {
  requireNative();
  tf.setBackend('native');

  for (const [i, c] of cases.entries()) {
    for (const kind of ['MaxPool', 'AvgPool'] as const) {
      it(`${kind} forward ${label(c)}`, () => {
        const runs = nativeRuns(kind, () => checkParity(kind, () => pools[kind](randTensor(c.x, 10 + i), c)));
        assert.equal(runs, 1);
      });
      it(`${kind}Grad ${label(c)}`, () => {
        const runs = nativeRuns(`${kind}Grad`, () =>
          checkParity(`${kind}Grad`, () => poolGrad(kind, c, randTensor(c.x, 20 + i), 30 + i)),
        );
        assert.equal(runs, 1);
      });
    }
  }

  it('MaxPoolGrad on ties: the first maximum of a window (row-major) takes the gradient, as in tfjs', () => {
    // values in {0, 1, 2}: most windows hold several equal maxima.
    const tied = (shape: number[], seed: number) =>
      tf.tensor(
        rand(
          shape.reduce((a, b) => a * b, 1),
          seed,
          0,
          3,
        ).map(Math.floor),
        shape,
      );
    for (const c of [cases[2]!, cases[4]!, cases[5]!, cases[9]!]) {
      const runs = nativeRuns('MaxPoolGrad', () =>
        checkParity('MaxPoolGrad ties', () => poolGrad('MaxPool', c, tied(c.x, 5), 6)),
      );
      assert.equal(runs, 1, label(c));
    }
  });

  it('MaxPool and MaxPoolGrad with NaN and -Infinity: NaN never wins, a window without numbers passes nothing', () => {
    const c: Case = { x: [1, 4, 4, 3], k: 2, s: 2, pad: 'valid' };
    const v = rand(48, 7);
    for (let j = 0; j < 12; j++) v[j] = -Infinity; // input row 0 ...
    for (let j = 12; j < 24; j++) v[j] = Number.NaN; // ... and row 1: two windows of -Inf and NaN only
    v[30] = Number.NaN;
    v[40] = -Infinity;
    checkParity('MaxPool NaN/-Inf', () => pools.MaxPool(tf.tensor(v, c.x), c));
    checkParity('MaxPoolGrad NaN/-Inf', () => poolGrad('MaxPool', c, tf.tensor(v, c.x), 8));
  });

  it('a 1x1 window with stride 1 falls back to tfjs (a zero-copy identity) and agrees', () => {
    const c: Case = { x: [2, 5, 5, 3], k: 1, s: 1, pad: 'same' };
    for (const kind of ['MaxPool', 'AvgPool'] as const) {
      const runs = nativeRuns(kind, () => checkParity(kind, () => pools[kind](randTensor(c.x, 3), c)));
      assert.equal(runs, 0);
    }
  });

  it('outputs are fully overwritten when a pooled (dirty) buffer is reused', () => {
    const c = cases[3]!; // valid, stride 2: some input cells lie in no window and must get 0
    checkParity('MaxPoolGrad reused buffers', () => {
      const outs: tf.Tensor[] = [];
      for (let r = 0; r < 3; r++) {
        const g = poolGrad('MaxPool', c, randTensor(c.x, 40 + r, 1, 2), 50 + r);
        const h = poolGrad('AvgPool', c, randTensor(c.x, 60 + r, 1, 2), 70 + r);
        // copies out, then dispose: the next round's outputs reuse these buffers from the pool
        outs.push(tf.tensor(g.dataSync(), g.shape), tf.tensor(h.dataSync(), h.shape));
        g.dispose();
        h.dispose();
      }
      return outs;
    });
  });

  // The DeepNN/LightNN pooling layers of the benchmark (batch 128).
  for (const shape of [
    [128, 32, 32, 64],
    [128, 16, 16, 32],
  ] as [number, number, number, number][]) {
    const c: Case = { x: shape, k: 2, s: 2, pad: 'valid' };
    it(`DeepNN shape: MaxPool 2x2/2 forward and gradient on ${shape.join('x')}`, () => {
      const fwd = nativeRuns('MaxPool', () =>
        checkParity('MaxPool', () => pools.MaxPool(randTensor(shape, 80), c)),
      );
      const bwd = nativeRuns('MaxPoolGrad', () =>
        checkParity('MaxPoolGrad', () => poolGrad('MaxPool', c, randTensor(shape, 81), 82)),
      );
      assert.deepEqual([fwd, bwd], [1, 1]);
    });
  }
});
