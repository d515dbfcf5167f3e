import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { fakeQuant } from '../../src/compress/quantize/fake-quant.js';
import { foldBn } from '../../src/compress/quantize/fold-bn.js';
import { Observer } from '../../src/compress/quantize/observers.js';
import {
  channelRanges,
  chooseParams,
  dequantize,
  paramsFromRanges,
  quantize,
  roundHalfEven,
} from '../../src/compress/quantize/qparams.js';

/** Seeded uniform values. */
function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  });
}

describe('quantize / dequantize', () => {
  it('round half to even', () => {
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4].map(roundHalfEven), [0, 2, 2, -0, -2, 2]);
  });

  for (const dtype of ['int8', 'uint8'] as const) {
    for (const symmetric of [true, false]) {
      it(`${dtype} ${symmetric ? 'symmetric' : 'asymmetric'}: round trip within half a step, zero exact, clipping`, () => {
        const x = rand(1000, 3, -2, 5);
        const lo = Math.min(...x);
        const hi = Math.max(...x);
        const p = paramsFromRanges([lo], [hi], dtype, symmetric);
        const back = dequantize(quantize(x, [1000], p), [1000], p);
        const step = p.scale[0]!;
        for (let i = 0; i < x.length; i++)
          assert.ok(Math.abs(back[i]! - x[i]!) <= step / 2 + 1e-6, `element ${i}`);
        const z = dequantize(quantize(Float32Array.of(0), [1], p), [1], p);
        assert.equal(z[0], 0, 'zero is exactly representable');
        const big = dequantize(quantize(Float32Array.of(1e6, -1e6), [2], p), [2], p);
        assert.ok(big[0]! <= hi + step && big[1]! >= Math.min(lo, -hi) - step, 'out-of-range values clip');
      });
    }
  }

  it('per-channel parameters follow each channel (axis 0 of an OIHW-like kernel)', () => {
    const shape = [3, 4];
    const x = Float32Array.of(0.1, -0.1, 0.05, 0, 10, -10, 5, 0, 100, 50, -100, 1);
    const { lo, hi } = channelRanges(x, shape, 0);
    assert.deepEqual(Array.from(hi), [0.10000000149011612, 10, 100]);
    const p = paramsFromRanges(lo, hi, 'int8', true, 0);
    const back = dequantize(quantize(x, shape, p), shape, p);
    for (let i = 0; i < x.length; i++)
      assert.ok(Math.abs(back[i]! - x[i]!) <= (p.scale[Math.floor(i / 4)]! / 2) * (1 + 1e-4), `element ${i}`);
    assert.ok(p.scale[0]! < p.scale[2]! / 100);
    assert.throws(() => quantize(x, [4, 3], p), /3 scales for axis 0 of size 4/);
  });

  it('chooseParams: symmetric int8 has zero point 0; a degenerate range still quantizes', () => {
    assert.deepEqual(chooseParams(-1, 2, 'int8', true), { scale: 2 / 127.5, zeroPoint: 0 });
    assert.equal(chooseParams(0, 0, 'uint8', false).scale, 1);
    assert.throws(() => chooseParams(2, 1, 'int8', false), /invalid range/);
  });
});

describe('observers', () => {
  const gauss = (n: number, seed: number) => {
    const u = rand(2 * n, seed, 1e-9, 1);
    return Float32Array.from(
      { length: n },
      (_, i) => Math.sqrt(-2 * Math.log(u[2 * i]!)) * Math.cos(2 * Math.PI * u[2 * i + 1]!),
    );
  };
  it('min-max sees the outlier, percentile clips it, MSE is never worse than min-max', () => {
    const x = gauss(20000, 5);
    x[7] = 40; // one outlier
    const mm = new Observer({ kind: 'minmax' });
    const pc = new Observer({ kind: 'percentile', percentile: 99.9 });
    const mse = new Observer({ kind: 'mse', dtype: 'uint8' });
    for (const o of [mm, pc, mse]) o.observe(x);
    assert.equal(mm.range()[1], 40);
    assert.ok(pc.range()[1] > 2.5 && pc.range()[1] < 4, `percentile ${pc.range()}`);
    // MSE keeps this single outlier (clipping it costs more than the coarser step), and its range
    // is never worse than min-max on the data it saw.
    const err = ([lo, hi]: [number, number]) => {
      const p = paramsFromRanges([lo], [hi], 'uint8', false);
      const back = dequantize(quantize(x, [x.length], p), [x.length], p);
      return back.reduce((a, v, i) => a + (v - x[i]!) ** 2, 0);
    };
    assert.ok(err(mse.range()) <= err(mm.range()) * (1 + 1e-9));
  });
  it('uniform data: min-max finds the bounds; moving average follows batches with momentum', () => {
    const mm = new Observer({ kind: 'minmax' });
    mm.observe(rand(5000, 1, -3, 2));
    const [lo, hi] = mm.range();
    assert.ok(lo < -2.99 && hi > 1.99);
    const ma = new Observer({ kind: 'moving-average', momentum: 0.5 });
    ma.observe([0, 1]);
    ma.observe([0, 3]);
    assert.deepEqual(ma.range(), [0, 2]);
    assert.throws(() => new Observer({ kind: 'minmax' }).range(), /no values observed/);
  });
});

describe('BN folding and fake quantization', () => {
  it('a folded conv equals conv + BN (inference) within 1e-5', async () => {
    await tf.setBackend('native');
    const x = tf.randomNormal([2, 5, 5, 3], 0, 1, 'float32', 1);
    const k = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 2);
    const b = tf.randomNormal([4], 0, 1, 'float32', 3);
    const bn = {
      gamma: rand(4, 4, 0.5, 2),
      beta: rand(4, 5),
      mean: rand(4, 6),
      variance: rand(4, 7, 0.5, 2),
      epsilon: 1e-3,
    };
    const ref = tf.batchNorm(
      tf.add(tf.conv2d(x as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'), b),
      bn.mean,
      bn.variance,
      bn.beta,
      bn.gamma,
      bn.epsilon,
    );
    const f = foldBn(k, b, bn);
    const got = tf.add(tf.conv2d(x as tf.Tensor4D, f.kernel as tf.Tensor4D, 1, 'same'), f.bias);
    const err = tf.max(tf.abs(tf.sub(got, ref))).dataSync()[0]!;
    const scale = tf.max(tf.abs(ref)).dataSync()[0]!;
    assert.ok(err / scale < 1e-5, `relative ${err / scale}`);
  });

  it('fake quantization rounds to the grid; the straight-through gradient is 1 inside, 0 outside', () => {
    const x = tf.tensor1d([-3, -0.26, 0.24, 0.25, 1, 5]);
    const y = fakeQuant(x, 0.5, 0, 'int8');
    assert.deepEqual(Array.from(y.dataSync()), [-3, -0.5, 0, 0, 1, 5]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(fakeQuant(t, 0.02, 0, 'int8')))(x);
    // int8 with scale 0.02: representable [-2.56, 2.54].
    assert.deepEqual(Array.from(g.dataSync()), [0, 1, 1, 1, 1, 0]);
  });
});
