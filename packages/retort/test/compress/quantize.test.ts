import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { MovingAverageObserver } from '../../src/compress/quantize/observers.js';
import { buildModel } from '../../src/models/index.js';
import { fakeQuant, fakeQuantRange } from './fake-quant-ref.js';
import { foldBatchNorms, foldBn } from './fold-bn.js';
import { Observer } from './observers-ref.js';
import {
  channelRanges,
  chooseParams,
  dequantize,
  paramsFromRanges,
  quantize,
  roundHalfEven,
} from './qparams-ref.js';

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

/** Seeded standard normal values (Box-Muller). */
function gauss(n: number, seed: number): Float32Array {
  const u = rand(2 * n, seed, 1e-9, 1);
  return Float32Array.from(
    { length: n },
    (_, i) => Math.sqrt(-2 * Math.log(u[2 * i]!)) * Math.cos(2 * Math.PI * u[2 * i + 1]!),
  );
}

/** Reference uint8 asymmetric quantization error in float64, written out here. */
function refError(x: ArrayLike<number>, lo: number, hi: number): number {
  const a = Math.min(lo, 0);
  const b = Math.max(hi, 0);
  const s = (b - a) / 255;
  const z = Math.round(-a / s);
  let e = 0;
  for (let i = 0; i < x.length; i++) {
    const q = Math.min(255, Math.max(0, Math.round(x[i]! / s) + z));
    e += ((q - z) * s - x[i]!) ** 2;
  }
  return e;
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
        const [qmin, qmax] = dtype === 'int8' ? [-128, 127] : [0, 255];
        const q = quantize(Float32Array.of(1e6, -1e6), [2], p);
        assert.deepEqual(Array.from(q), [qmax, qmin], 'out-of-range values clip to the ends');
        if (symmetric) assert.equal(p.zeroPoint[0], dtype === 'int8' ? 0 : 128);
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
    assert.ok(p.scale[0]! < p.scale[2]! / 100, 'small channels get small steps');
    assert.throws(() => quantize(x, [4, 3], p), /3 scales for axis 0 of size 4/);
  });

  it('chooseParams: symmetric int8 has zero point 0; a degenerate range still quantizes', () => {
    assert.deepEqual(chooseParams(-1, 2, 'int8', true), { scale: 2 / 127.5, zeroPoint: 0 });
    assert.deepEqual(chooseParams(-1, 3, 'uint8', false), { scale: 4 / 255, zeroPoint: 64 });
    assert.equal(chooseParams(0, 0, 'uint8', false).scale, 1);
    assert.throws(() => chooseParams(2, 1, 'int8', false), /invalid range/);
  });
});

describe('observers', () => {
  it('gaussian with an outlier: min-max keeps it, percentile and MSE clip it; MSE finds the least error', () => {
    const x = gauss(20000, 5);
    const lo = Math.min(...x);
    x[7] = 40; // one outlier
    const mm = new Observer({ kind: 'minmax' });
    const pc = new Observer({ kind: 'percentile', percentile: 99.9 });
    const mse = new Observer({ kind: 'mse', dtype: 'uint8' });
    // Several batches: the observers accumulate.
    for (let b = 0; b < 4; b++)
      for (const o of [mm, pc, mse]) o.observe(x.subarray(b * 5000, (b + 1) * 5000));
    assert.deepEqual(mm.range(), [lo, 40]);
    // Percentile: all 20000 values fit the reservoir, so it is exact (reference: a sort here).
    const sorted = Float64Array.from(x).sort();
    const at = (q: number) => {
      const pos = (q / 100) * (sorted.length - 1);
      const i = Math.floor(pos);
      return sorted[i]! + (pos - i) * (sorted[i + 1]! - sorted[i]!);
    };
    const [plo, phi] = pc.range();
    assert.ok(Math.abs(phi - at(99.9)) < 1e-5 && Math.abs(plo - at(0.1)) < 1e-5, `percentile ${plo}, ${phi}`);
    assert.ok(phi > 2.9 && phi < 3.5, `the 99.9th percentile of N(0, 1) is 3.09, got ${phi}`);
    const [mlo, mhi] = mse.range();
    assert.ok(mlo > lo - 0.01 && mlo < 0, `MSE does not stretch the other side: lo ${mlo}`);
    // Reference optimum: hi on a 0.01 grid with lo at the data minimum (float64 here). For one
    // outlier among 20000 N(0, 1) values it is near 40 / (1 + 20000 / (255^2 * 12)) = 38.9: the
    // squared error of clipping the outlier soon outweighs the finer step for everything else.
    let best = Number.POSITIVE_INFINITY;
    let bestHi = 0;
    for (let h = 30; h <= 40; h += 0.01) {
      const e = refError(x, lo, h);
      if (e < best) [best, bestHi] = [e, h];
    }
    assert.ok(
      Math.abs(mhi - bestHi) < 0.3 && mhi < 39.5,
      `MSE clips the outlier: hi ${mhi}, reference ${bestHi}`,
    );
    const got = refError(x, mlo, mhi);
    assert.ok(got <= best * 1.01, `MSE range error ${got}, reference optimum ${best}`);
    assert.ok(got < refError(x, lo, 40), 'better than min-max');
    assert.ok(got < refError(x, plo, phi), 'better than clipping at the percentiles');
  });

  it('uniform data: min-max, percentile and MSE all find the bounds; int8 symmetric MSE is symmetric', () => {
    const x = rand(20000, 1, -3, 2);
    const mm = new Observer({ kind: 'minmax' });
    const pc = new Observer({ kind: 'percentile', percentile: 99.99 });
    const mse = new Observer({ kind: 'mse', dtype: 'uint8' });
    for (const o of [mm, pc, mse]) o.observe(x);
    const [lo, hi] = mm.range();
    assert.ok(lo < -2.999 && lo >= -3 && hi > 1.999 && hi <= 2, `min-max ${lo}, ${hi}`);
    for (const [name, r] of [
      ['percentile', pc.range()],
      ['mse', mse.range()],
    ] as const)
      assert.ok(Math.abs(r[0] + 3) < 0.05 && Math.abs(r[1] - 2) < 0.05, `${name}: ${r}`);
    const sym = new Observer({ kind: 'mse', dtype: 'int8', symmetric: true });
    sym.observe(x);
    const [slo, shi] = sym.range();
    assert.equal(slo, -shi);
    assert.ok(shi > 2.9 && shi <= 3, `symmetric MSE ${shi}`);
  });

  it('moving average follows batches with momentum; errors are clear', () => {
    const ma = new MovingAverageObserver(0.5);
    ma.observe([0, 1]);
    ma.observe([0, 3]);
    ma.observe([-4, 3]);
    // lo: 0 -> 0 -> 0 + 0.5 (-4 - 0) = -2; hi: 1 -> 2 -> 2.5.
    assert.deepEqual(ma.range(), [-2, 2.5]);
    assert.throws(() => new MovingAverageObserver().range(), /no values observed/);
    assert.throws(() => new MovingAverageObserver(0), /momentum must be in \(0, 1\], got 0/);
    assert.throws(
      () => new MovingAverageObserver().observe([1, Number.NaN]),
      /non-finite value NaN at index 1 of batch 0/,
    );
    assert.throws(() => new Observer({ kind: 'minmax' }).range(), /no values observed/);
    assert.throws(() => new Observer({ kind: 'nope' as 'minmax' }), /unknown kind 'nope' \(known: minmax/);
    assert.throws(
      () => new Observer({ kind: 'percentile', percentile: 40 }),
      /percentile must be in \(50, 100\]/,
    );
    assert.throws(
      () => new Observer({ kind: 'minmax' }).observe([1, Number.NaN]),
      /non-finite value NaN at index 1/,
    );
  });
});

function randomizeBn(m: tfl.LayersModel, seed: number): void {
  for (const l of m.layers) {
    if (l.getClassName() !== 'BatchNormalization') continue;
    const c = l.getWeights()[0]!.shape[0]!;
    const u = (lo: number, hi: number) => tf.randomUniform([c], lo, hi, 'float32', seed++);
    l.setWeights([u(0.5, 1.5), u(-0.5, 0.5), u(-0.5, 0.5), u(0.5, 2)]);
  }
}

function relDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! / tf.max(tf.abs(a)).dataSync()[0]!);
}

describe('BN folding', () => {
  const bn = (c: number) => ({
    gamma: rand(c, 4, 0.5, 2),
    beta: rand(c, 5),
    mean: rand(c, 6),
    variance: rand(c, 7, 0.5, 2),
    epsilon: 1e-3,
  });

  it('a folded conv equals conv + BN (inference) within 1e-5', async () => {
    await tf.setBackend('native');
    const x = tf.randomNormal([2, 5, 5, 3], 0, 1, 'float32', 1);
    const k = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 2);
    const b = tf.randomNormal([4], 0, 1, 'float32', 3);
    const p = bn(4);
    const ref = tf.batchNorm(
      tf.add(tf.conv2d(x as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'), b),
      p.mean,
      p.variance,
      p.beta,
      p.gamma,
      p.epsilon,
    );
    const f = foldBn(k, b, p);
    const got = tf.add(tf.conv2d(x as tf.Tensor4D, f.kernel as tf.Tensor4D, 1, 'same'), f.bias);
    assert.ok(relDiff(ref, got) < 1e-5, `relative ${relDiff(ref, got)}`);
  });

  it('a folded depthwise conv (multiplier 2) equals depthwise + BN within 1e-5', () => {
    const x = tf.randomNormal([2, 5, 5, 3], 0, 1, 'float32', 1);
    const k = tf.randomNormal([3, 3, 3, 2], 0, 1, 'float32', 2);
    const p = bn(6);
    const ref = tf.batchNorm(
      tf.depthwiseConv2d(x as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'),
      p.mean,
      p.variance,
      p.beta,
      p.gamma,
      p.epsilon,
    );
    const f = foldBn(k, null, p, 'depthwise');
    const got = tf.add(tf.depthwiseConv2d(x as tf.Tensor4D, f.kernel as tf.Tensor4D, 1, 'same'), f.bias);
    assert.ok(relDiff(ref, got) < 1e-5, `relative ${relDiff(ref, got)}`);
    assert.throws(
      () => foldBn(k, null, p),
      /the batch norm has 6 channels, the kernel \[3,3,3,2\] has 2 outputs/,
    );
  });

  for (const [name, shape, extra] of [
    ['resnet8', [12, 12, 3], {}],
    ['mobilenetv2', [16, 16, 3], { widthMult: 0.25 }],
  ] as const) {
    it(`${name}: every BN folded away; inference outputs equal within 1e-5`, async () => {
      await tf.setBackend('native');
      const m = buildModel(name, { inputShape: shape, numClasses: 10, seed: 2, ...extra });
      randomizeBn(m, 30);
      if (name === 'mobilenetv2') {
        const c = m.getLayer('classifier.0');
        c.setWeights([tf.randomNormal([1280, 10], 0, 1, 'float32', 3), c.getWeights()[1]!]);
      }
      const folded = foldBatchNorms(m);
      const bns = m.layers.filter((l) => l.getClassName() === 'BatchNormalization');
      assert.equal(folded.layers.filter((l) => l.getClassName() === 'BatchNormalization').length, 0);
      // Each BN's 4C parameters go, C bias entries arrive.
      const c = bns.reduce((a, l) => a + l.getWeights()[0]!.shape[0]!, 0);
      assert.equal(folded.countParams(), m.countParams() - 3 * c);
      const x = tf.randomNormal([2, ...shape], 0, 1, 'float32', 8);
      const d = relDiff(m.predict(x) as tf.Tensor, folded.predict(x) as tf.Tensor);
      assert.ok(d < 1e-5, `relative ${d}`);
    });
  }
});

describe('fake quantization', () => {
  it('per tensor: rounds to the grid; the straight-through gradient is 1 inside, 0 outside', () => {
    const x = tf.tensor1d([-3, -0.26, 0.24, 0.25, 1, 5]);
    const p = (s: number) => ({
      dtype: 'int8' as const,
      scale: Float32Array.of(s),
      zeroPoint: Int32Array.of(0),
    });
    assert.deepEqual(Array.from(fakeQuant(x, p(0.5)).dataSync()), [-3, -0.5, 0, 0, 1, 5]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(fakeQuant(t, p(0.02))))(x);
    // int8 with scale 0.02: representable [-2.56, 2.54].
    assert.deepEqual(Array.from(g.dataSync()), [0, 1, 1, 1, 1, 0]);
  });

  it('per channel: equals quantize -> dequantize; the gradient stops outside each channel range', () => {
    const shape = [4, 3];
    const xs = rand(12, 9, -3, 3);
    const p = paramsFromRanges(Float32Array.of(-1, -2, 0), Float32Array.of(1, 1, 2), 'uint8', false, 1);
    const want = dequantize(quantize(xs, shape, p), shape, p);
    const x = tf.tensor(xs, shape);
    const got = fakeQuant(x, p).dataSync();
    for (let i = 0; i < 12; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-6, `element ${i}`);
    const g = tf
      .grad((t: tf.Tensor) => tf.sum(fakeQuant(t, p)))(x)
      .dataSync();
    for (let i = 0; i < 12; i++) {
      const c = i % 3;
      const [qmin, qmax] = [0, 255];
      const lo = (qmin - p.zeroPoint[c]!) * p.scale[c]!;
      const hi = (qmax - p.zeroPoint[c]!) * p.scale[c]!;
      assert.equal(g[i], xs[i]! >= lo && xs[i]! <= hi ? 1 : 0, `element ${i} (${xs[i]} in [${lo}, ${hi}]?)`);
    }
  });

  it('to a range given as tensors: the same grid as chooseParams', () => {
    const xs = rand(50, 10, -1, 4);
    const x = tf.tensor1d(xs);
    const got = fakeQuantRange(x, tf.scalar(-0.5), tf.scalar(3), 'uint8').dataSync();
    const p = paramsFromRanges([-0.5], [3], 'uint8', false);
    const want = dequantize(quantize(xs, [50], p), [50], p);
    for (let i = 0; i < 50; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-6, `element ${i}`);
    const sym = fakeQuantRange(x, tf.scalar(-0.5), tf.scalar(3), 'int8', true).dataSync();
    const ps = paramsFromRanges([-0.5], [3], 'int8', true);
    const wantS = dequantize(quantize(xs, [50], ps), [50], ps);
    for (let i = 0; i < 50; i++) assert.ok(Math.abs(sym[i]! - wantS[i]!) < 1e-6, `symmetric element ${i}`);
  });
});
