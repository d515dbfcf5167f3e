import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkParity, nativeRuns, randTensor, requireNative, tf } from './parity.js';

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
interface Case {
  x: [number, number, number, number];
  k: [number, number];
  oc: number;
  stride: number;
  pad: Pad;
  dilation?: number;
}

// batch 1, odd sizes, stride 2, same/valid/explicit padding, dilation, 1x1.
const cases: Case[] = [
  { x: [1, 5, 7, 3], k: [3, 3], oc: 4, stride: 1, pad: 'same' },
  { x: [2, 9, 8, 5], k: [3, 3], oc: 6, stride: 2, pad: 'same' },
  { x: [3, 6, 6, 4], k: [3, 3], oc: 2, stride: 2, pad: 'valid' },
  { x: [2, 7, 5, 3], k: [1, 1], oc: 8, stride: 1, pad: 'valid' },
  { x: [1, 11, 9, 2], k: [5, 3], oc: 3, stride: 1, pad: 'same', dilation: 2 },
  {
    x: [2, 8, 8, 16],
    k: [3, 3],
    oc: 32,
    stride: 1,
    pad: [
      [0, 0],
      [1, 2],
      [2, 0],
      [0, 0],
    ],
  },
  { x: [4, 16, 16, 3], k: [3, 3], oc: 16, stride: 1, pad: 'same' },
];

function name(c: Case): string {
  return `x${c.x.join('x')} k${c.k.join('x')} oc${c.oc} s${c.stride} ${JSON.stringify(c.pad)} d${c.dilation ?? 1}`;
}

describe('Conv2D family: native vs cpu', () => {
  requireNative();
  for (const [i, c] of cases.entries()) {
    const w: [number, number, number, number] = [c.k[0], c.k[1], c.x[3], c.oc];
    const conv = (x: tf.Tensor, f: tf.Tensor) =>
      tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.stride, c.pad, 'NHWC', c.dilation ?? 1);

    it(`Conv2D forward ${name(c)}`, () => {
      checkParity('conv2d', () => conv(randTensor(c.x, 10 + i), randTensor(w, 20 + i)));
      assert.equal(
        nativeRuns('Conv2D', () => tf.tidy(() => conv(randTensor(c.x, 1), randTensor(w, 2)))),
        1,
      );
    });

    if ((c.dilation ?? 1) === 1) {
      it(`Conv2D gradients (BackpropInput, BackpropFilter) ${name(c)}`, () => {
        const run = () => {
          const x = randTensor(c.x, 30 + i);
          const f = randTensor(w, 40 + i);
          const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a, b), conv(a, b))));
          return g([x, f]);
        };
        checkParity('conv2d grads', run);
        // Parity alone would pass if both sides ran the JS kernels (a declined geometry, a stale addon).
        tf.setBackend('native');
        for (const k of ['Conv2DBackpropInput', 'Conv2DBackpropFilter'])
          assert.ok(nativeRuns(k, () => tf.tidy(run)) >= 1, `${k} ran natively`);
      });
    }

    it(`FusedConv2D bias+relu forward and gradient ${name(c)}`, () => {
      const fused = (x: tf.Tensor, f: tf.Tensor, b: tf.Tensor) =>
        tf.fused.conv2d({
          x: x as tf.Tensor4D,
          filter: f as tf.Tensor4D,
          strides: c.stride,
          pad: c.pad,
          dilations: c.dilation ?? 1,
          bias: b,
          activation: 'relu',
        });
      checkParity('fused conv2d', () =>
        fused(randTensor(c.x, 50 + i), randTensor(w, 60 + i), randTensor([c.oc], 70 + i)),
      );
      assert.equal(
        nativeRuns('FusedConv2D', () =>
          tf.tidy(() => fused(randTensor(c.x, 1), randTensor(w, 2), randTensor([c.oc], 3))),
        ),
        1,
      );
      if ((c.dilation ?? 1) === 1) {
        const grads = () =>
          tf.grads((x: tf.Tensor, f: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(fused(x, f, b))))([
            randTensor(c.x, 80 + i),
            randTensor(w, 90 + i),
            randTensor([c.oc], 100 + i),
          ]);
        checkParity('fused conv2d grads', grads);
        tf.setBackend('native');
        for (const k of ['Conv2DBackpropInput', 'Conv2DBackpropFilter'])
          assert.ok(nativeRuns(k, () => tf.tidy(grads)) >= 1, `${k} ran natively`);
      }
    });
  }

  it('a large-channel conv and its gradients (long reductions: 2e-5)', () => {
    checkParity(
      'conv2d 128ch',
      () =>
        tf.grads((x: tf.Tensor, f: tf.Tensor) =>
          tf.sum(tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same')),
        )([randTensor([8, 12, 12, 128], 1), randTensor([3, 3, 128, 64], 2)]),
      2e-5,
    );
  });

  it('NCHW input falls back to the JS kernel and still agrees', () => {
    checkParity('conv2d NCHW', () =>
      tf.conv2d(
        randTensor([1, 3, 5, 5], 1) as tf.Tensor4D,
        randTensor([3, 3, 3, 2], 2) as tf.Tensor4D,
        1,
        'same',
        'NCHW',
      ),
    );
  });
});

describe('DepthwiseConv2dNative family: native vs cpu', () => {
  const dcases: {
    x: [number, number, number, number];
    k: number;
    m: number;
    stride: number;
    pad: 'same' | 'valid';
    d: number;
  }[] = [
    { x: [1, 7, 7, 3], k: 3, m: 1, stride: 1, pad: 'same', d: 1 },
    { x: [2, 9, 8, 4], k: 3, m: 2, stride: 2, pad: 'same', d: 1 },
    { x: [2, 8, 8, 5], k: 3, m: 1, stride: 2, pad: 'valid', d: 1 },
    { x: [1, 10, 9, 6], k: 3, m: 1, stride: 1, pad: 'same', d: 2 },
    { x: [3, 6, 6, 32], k: 5, m: 1, stride: 1, pad: 'same', d: 1 },
  ];
  for (const [i, c] of dcases.entries()) {
    const w = [c.k, c.k, c.x[3], c.m];
    const dw = (x: tf.Tensor, f: tf.Tensor) =>
      tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.stride, c.pad, 'NHWC', c.d);
    const label = `x${c.x.join('x')} k${c.k} m${c.m} s${c.stride} ${c.pad} d${c.d}`;
    it(`forward ${label}`, () => {
      checkParity('depthwise', () => dw(randTensor(c.x, 200 + i), randTensor(w, 210 + i)));
      assert.equal(
        nativeRuns('DepthwiseConv2dNative', () => tf.tidy(() => dw(randTensor(c.x, 1), randTensor(w, 2)))),
        1,
      );
    });
    if (c.d !== 1) continue; // tfjs defines no gradient for dilated depthwise conv
    it(`gradients ${label}`, () => {
      const run = () =>
        tf.grads((x: tf.Tensor, f: tf.Tensor) => tf.sum(tf.square(dw(x, f))))([
          randTensor(c.x, 220 + i),
          randTensor(w, 230 + i),
        ]);
      checkParity('depthwise grads', run);
      tf.setBackend('native');
      for (const k of ['DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput'])
        assert.equal(
          nativeRuns(k, () => tf.tidy(run)),
          1,
          `${k} ran natively`,
        );
    });
  }
});
