import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkParity, nativeRuns, randTensor, requireNative, runOn, tf } from './parity.js';

const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

interface Case {
  a: number[];
  b: number[];
  ta: boolean;
  tb: boolean;
}

// Odd sizes, batch 1, rank 2 to 4, every transpose combination, and batch broadcasting either way
// (a shared b is folded into one tall product natively; a shared a is a oneDNN batch broadcast).
const cases: Case[] = [
  { a: [5, 7], b: [7, 3], ta: false, tb: false },
  { a: [1, 5, 7], b: [1, 7, 3], ta: false, tb: false },
  { a: [3, 5, 7], b: [3, 7, 4], ta: false, tb: false },
  { a: [3, 7, 5], b: [3, 7, 4], ta: true, tb: false },
  { a: [3, 5, 7], b: [3, 4, 7], ta: false, tb: true },
  { a: [3, 7, 5], b: [3, 4, 7], ta: true, tb: true },
  { a: [4, 5, 7], b: [7, 3], ta: false, tb: false },
  { a: [4, 5, 7], b: [1, 3, 7], ta: false, tb: true },
  { a: [4, 7, 5], b: [7, 3], ta: true, tb: false },
  { a: [5, 7], b: [4, 7, 3], ta: false, tb: false },
  { a: [1, 7, 5], b: [4, 3, 7], ta: true, tb: true },
  { a: [2, 3, 5, 7], b: [7, 6], ta: false, tb: false },
  { a: [2, 3, 5, 7], b: [2, 3, 7, 6], ta: false, tb: false },
  { a: [1, 1], b: [1, 9], ta: false, tb: false },
  { a: [33, 65], b: [65, 17], ta: false, tb: false },
];

function label(c: Case): string {
  return `a${c.a.join('x')}${c.ta ? 'ᵀ' : ''} b${c.b.join('x')}${c.tb ? 'ᵀ' : ''}`;
}

describe('BatchMatMul: native vs cpu', () => {
  requireNative();
  tf.setBackend('native');
  for (const [i, c] of cases.entries()) {
    it(`forward ${label(c)}`, () => {
      const runs = nativeRuns('BatchMatMul', () =>
        checkParity('matMul', () => tf.matMul(randTensor(c.a, 10 + i), randTensor(c.b, 20 + i), c.ta, c.tb)),
      );
      assert.equal(runs, 1);
    });
    // tfjs-core's BatchMatMul gradient does not sum over broadcast batch dims (it fails on cpu too:
    // "gradient of input 'b' has shape ..."), so gradients are checked where batches match.
    if (sizeOf(c.a.slice(0, -2)) !== sizeOf(c.b.slice(0, -2))) continue;
    it(`gradients ${label(c)}`, () => {
      const runs = nativeRuns('BatchMatMul', () =>
        checkParity('matMul grads', () =>
          tf.grads((a: tf.Tensor, b: tf.Tensor) => {
            const y = tf.matMul(a, b, c.ta, c.tb);
            return tf.sum(tf.mul(y, randTensor(y.shape, 30 + i)));
          })([randTensor(c.a, 40 + i), randTensor(c.b, 50 + i)]),
        ),
      );
      assert.ok(runs >= 3, `native BatchMatMul ran ${runs} times`);
    });
  }

  it('batch layouts tfjs cpu does not broadcast as such fall back to JS and agree', () => {
    // outer dims [2, 1] and [3]: tfjs flattens to batches 2 and 3 (neither equal nor 1)
    const run = () => tf.matMul(randTensor([2, 1, 4, 5], 1), randTensor([3, 5, 2], 2));
    // Whatever cpu does with this layout (a result or an error), native must do the same, in JS.
    let cpuError: string | null = null;
    try {
      runOn('cpu', run);
    } catch (e) {
      cpuError = (e as Error).message;
    }
    const runs = nativeRuns('BatchMatMul', () => {
      if (cpuError === null) checkParity('matMul odd broadcast', run);
      else assert.throws(() => runOn('native', run), { message: cpuError });
    });
    assert.equal(runs, 0);
  });
});

interface FusedCase {
  a: number[];
  b: number[];
  ta: boolean;
  tb: boolean;
  bias: number[] | null;
  act: 'linear' | 'relu';
}

const fusedCases: FusedCase[] = [
  { a: [5, 7], b: [7, 3], ta: false, tb: false, bias: [3], act: 'relu' },
  { a: [5, 7], b: [7, 3], ta: false, tb: false, bias: null, act: 'relu' },
  { a: [5, 7], b: [7, 3], ta: false, tb: false, bias: [3], act: 'linear' },
  { a: [7, 5], b: [3, 7], ta: true, tb: true, bias: [1, 3], act: 'relu' },
  { a: [5, 7], b: [3, 7], ta: false, tb: true, bias: [5, 3], act: 'linear' },
  { a: [5, 7], b: [7, 3], ta: false, tb: false, bias: [5, 1], act: 'relu' },
  { a: [5, 7], b: [7, 3], ta: false, tb: false, bias: [], act: 'linear' },
  { a: [4, 5, 7], b: [4, 7, 3], ta: false, tb: false, bias: [3], act: 'relu' },
  { a: [4, 5, 7], b: [4, 7, 3], ta: false, tb: false, bias: [4, 5, 3], act: 'linear' },
  { a: [4, 7, 5], b: [7, 3], ta: true, tb: false, bias: [1, 1, 3], act: 'relu' },
  { a: [4, 5, 7], b: [7, 3], ta: false, tb: false, bias: [5, 3], act: 'relu' },
  { a: [4, 5, 7], b: [7, 3], ta: false, tb: false, bias: [4, 1, 3], act: 'relu' },
  { a: [1, 7, 5], b: [4, 7, 3], ta: true, tb: false, bias: [4, 5, 1], act: 'linear' },
];

function fusedLabel(c: FusedCase): string {
  return `${label(c)} bias ${c.bias === null ? 'none' : `[${c.bias.join(',')}]`} ${c.act}`;
}

function fused(c: FusedCase, a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor | undefined): tf.Tensor {
  return tf.fused.matMul({
    a,
    b,
    transposeA: c.ta,
    transposeB: c.tb,
    ...(bias === undefined ? {} : { bias }),
    activation: c.act,
  });
}

describe('_FusedMatMul: native vs cpu', () => {
  requireNative();
  tf.setBackend('native');
  for (const [i, c] of fusedCases.entries()) {
    it(`forward ${fusedLabel(c)}`, () => {
      const runs = nativeRuns('_FusedMatMul', () =>
        checkParity('fused matMul', () =>
          fused(
            c,
            randTensor(c.a, 10 + i),
            randTensor(c.b, 20 + i),
            c.bias === null ? undefined : randTensor(c.bias, 30 + i),
          ),
        ),
      );
      assert.equal(runs, 1);
    });
  }

  it('gradients through fused linear matMul with bias (the forward stays fused under tf.grad)', () => {
    for (const c of [fusedCases[2]!, fusedCases[4]!, fusedCases[8]!]) {
      const runs = nativeRuns('_FusedMatMul', () =>
        checkParity('fused matMul grads', () =>
          tf.grads((a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor) => {
            const y = fused(c, a, b, bias);
            return tf.sum(tf.mul(y, randTensor(y.shape, 7)));
          })([randTensor(c.a, 1), randTensor(c.b, 2), randTensor(c.bias!, 3)]),
        ),
      );
      assert.equal(runs, 1, fusedLabel(c));
    }
  });

  it('prelu and other activations fall back to JS and agree', () => {
    const a = [5, 7];
    const b = [7, 3];
    const runs = nativeRuns('_FusedMatMul', () => {
      checkParity('fused prelu', () =>
        tf.fused.matMul({
          a: randTensor(a, 1),
          b: randTensor(b, 2),
          activation: 'prelu',
          preluActivationWeights: randTensor([3], 3),
        }),
      );
      checkParity('fused elu', () =>
        tf.fused.matMul({ a: randTensor(a, 1), b: randTensor(b, 2), activation: 'elu' }),
      );
    });
    assert.equal(runs, 0);
  });

  it('a tfjs-layers Dense layer runs through native _FusedMatMul', () => {
    const runs = nativeRuns('_FusedMatMul', () =>
      checkParity('dense', () => {
        const layer = tfl.layers.dense({
          units: 10,
          activation: 'relu',
          weights: [randTensor([64, 10], 1), randTensor([10], 2)],
        });
        const y = layer.apply(randTensor([9, 64], 3)) as tf.Tensor;
        layer.dispose();
        return y;
      }),
    );
    assert.equal(runs, 1);
  });

  // The DeepNN/LightNN classifier layers of the benchmark (batch 128). K = 2048 is a long reduction
  // (tfjs sums in doubles per block of 48, oneDNN in floats with FMA), yet the gap measured ~1e-6 of
  // the largest output, so the default 1e-5 holds here too.
  for (const [a, b, act] of [
    [[128, 2048], [2048, 512], 'relu'],
    [[128, 512], [512, 10], 'linear'],
  ] as [number[], number[], 'relu' | 'linear'][]) {
    const c: FusedCase = { a, b, ta: false, tb: false, bias: [b[1]!], act };
    it(`DeepNN shape: dense ${a.join('x')} x ${b.join('x')} ${act}, forward and gradients`, () => {
      const fwd = nativeRuns('_FusedMatMul', () =>
        checkParity('dense', () => fused(c, randTensor(a, 1), randTensor(b, 2), randTensor(c.bias!, 3))),
      );
      // relu under tf.grad is not fused by tfjs (matMul + add + relu), linear is: both need BatchMatMul.
      const bwd = nativeRuns('BatchMatMul', () =>
        checkParity('dense grads', () =>
          tf.grads((x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor) => {
            const y = fused(c, x, w, bias);
            return tf.sum(tf.mul(y, randTensor(y.shape, 4)));
          })([randTensor(a, 5), randTensor(b, 6), randTensor(c.bias!, 7)]),
        ),
      );
      assert.equal(fwd, 1);
      assert.ok(bwd >= 2, `native BatchMatMul ran ${bwd} times`);
    });
  }
});
