import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { convRegWeights, fitnet, fitnetLoss } from '../../../src/distill/losses/fitnet.js';
import {
  BACKENDS,
  featureCases,
  hwio,
  lossContext,
  nhwc,
  setWeights,
  tapShape,
  transposedKernel,
} from './feature-golden.js';
import { assertClose } from './golden.js';

/** PyTorch layouts: maps NCHW, kernel OIHW or (transposed) [in, out, 4, 4]. */
interface FitnetCase {
  name: string;
  kind: 'stride2' | 'transposed' | 'valid';
  student_shape: number[];
  teacher_shape: number[];
  kernel_shape: number[];
  student: number[];
  teacher: number[];
  kernel: number[];
  bias: number[];
  gamma: number[];
  beta: number[];
  loss: number;
  grad_student: number[];
  grad_kernel: number[];
  grad_bias: number[];
  grad_gamma: number[];
  grad_beta: number[];
  /** Only in the fitnet_distance cases (the others are l2). */
  distance?: 'l1' | 'smooth-l1';
  smooth_beta?: number;
}
const cases = featureCases<FitnetCase>('fitnet');
const distanceCases = featureCases<FitnetCase>('fitnet_distance');

function load(c: FitnetCase) {
  const kernel = (d: number[]) =>
    c.kind === 'transposed' ? transposedKernel(d, c.kernel_shape) : hwio(d, c.kernel_shape);
  return {
    s: nhwc(c.student, c.student_shape),
    t: nhwc(c.teacher, c.teacher_shape),
    w: [kernel(c.kernel), tf.tensor1d(c.bias), tf.tensor1d(c.gamma), tf.tensor1d(c.beta)] as const,
    grads: [
      nhwc(c.grad_student, c.student_shape),
      kernel(c.grad_kernel),
      tf.tensor1d(c.grad_bias),
      tf.tensor1d(c.grad_gamma),
      tf.tensor1d(c.grad_beta),
    ],
  };
}

const asWeights = (k: tf.Tensor, b: tf.Tensor, g: tf.Tensor, be: tf.Tensor) => ({
  kernel: k as tf.Tensor4D,
  bias: b as tf.Tensor1D,
  gamma: g as tf.Tensor1D,
  beta: be as tf.Tensor1D,
});

for (const backend of BACKENDS) {
  describe(`FitNet (RepDistiller's ConvReg + MSE) vs PyTorch on ${backend}`, () => {
    for (const c of [...cases, ...distanceCases]) {
      it(`${c.name}: value and gradients (student, kernel, bias, gamma, beta)`, async () => {
        await tf.setBackend(backend);
        const { s, t, w, grads } = load(c);
        const opts = c.distance === undefined ? {} : { distance: c.distance, beta: c.smooth_beta! };
        const f = (x: tf.Tensor, k: tf.Tensor, b: tf.Tensor, g: tf.Tensor, be: tf.Tensor) =>
          fitnetLoss(x as tf.Tensor4D, t, asWeights(k, b, g, be), opts);
        assertClose(await f(s, ...w).data(), [c.loss], `${c.name} loss`);
        const got = tf.grads(f)([s, ...w]);
        const names = ['student', 'kernel', 'bias', 'gamma', 'beta'];
        for (const [i, g] of grads.entries())
          assertClose(await got[i]!.data(), await g.data(), `${c.name} d / d ${names[i]}`);
      });
    }
  });
}

describe('FitNet descriptor', () => {
  const data = { numExamples: 1, numClasses: 10, batchSize: 8, seed: 0 };

  it('defaults to l2, taps the hint on both sides, sizes the connector from the tapped shapes', async () => {
    await tf.setBackend('native');
    assert.deepEqual(fitnet.schema.parse({}), { distance: 'l2', beta: 1 });
    assert.throws(() => fitnet.schema.parse({ kernelSize: 3 }));
    assert.throws(() => fitnet.schema.parse({ distance: 'l3' }));
    assert.deepEqual(fitnet.needs.taps, { student: ['hint'], teacher: ['hint'] });
    const kernelOf = (s: number[], t: number[]) =>
      convRegWeights(
        fitnet.parts!({ student: { hint: s }, teacher: { hint: t } }, fitnet.schema.parse({}), data)
          .connector,
      ).kernel.shape;
    assert.deepEqual(kernelOf([5, 5, 3], [5, 5, 7]), [1, 1, 3, 7]);
    assert.deepEqual(kernelOf([8, 8, 4], [4, 4, 6]), [3, 3, 4, 6]);
    assert.deepEqual(kernelOf([4, 4, 4], [8, 8, 6]), [4, 4, 6, 4]);
    assert.deepEqual(kernelOf([6, 5, 2], [4, 4, 3]), [3, 2, 2, 3]);
    const w = convRegWeights(
      fitnet.parts!(
        { student: { hint: [5, 5, 3] }, teacher: { hint: [5, 5, 7] } },
        fitnet.schema.parse({}),
        data,
      ).connector,
    );
    assert.ok(w.kernel instanceof tf.Variable && w.gamma instanceof tf.Variable);
    assert.deepEqual(Array.from(await w.gamma.data()), [1, 1, 1, 1, 1, 1, 1]);
    assert.deepEqual(Array.from(await w.beta.data()), [0, 0, 0, 0, 0, 0, 0]);
    const bound = 1 / Math.sqrt(3);
    assert.ok(Array.from(await w.kernel.data()).every((v) => Math.abs(v) <= bound));
  });

  for (const c of cases) {
    it(`${c.name}: loss through the descriptor and its live connector equals the pure function`, async () => {
      await tf.setBackend('native');
      const { s, t, w } = load(c);
      const parts = fitnet.parts!(
        { student: { hint: tapShape(c.student_shape) }, teacher: { hint: tapShape(c.teacher_shape) } },
        fitnet.schema.parse({}),
        data,
      );
      const vars = convRegWeights(parts.connector) as unknown as Record<string, tf.Variable>;
      setWeights(vars, { kernel: w[0], bias: w[1], gamma: w[2], beta: w[3] });
      const cfg = fitnet.schema.parse({});
      const v = fitnet.loss(lossContext(cfg, { hint: s }, { hint: t }, parts));
      assertClose(await v.data(), [c.loss], `${c.name} descriptor`);
      // The connector trains: its variables get gradients through the descriptor.
      const { grads } = tf.variableGrads(
        () => fitnet.loss(lossContext(cfg, { hint: s }, { hint: t }, parts)),
        Object.values(vars),
      );
      assertClose(
        await grads[vars['kernel']!.name]!.data(),
        await load(c).grads[1]!.data(),
        'kernel gradient',
      );
    });
  }

  it('passes its distance to the loss: an l1 case through the descriptor', async () => {
    await tf.setBackend('native');
    const c = distanceCases.find((k) => k.distance === 'l1')!;
    const { s, t, w } = load(c);
    const parts = fitnet.parts!(
      { student: { hint: tapShape(c.student_shape) }, teacher: { hint: tapShape(c.teacher_shape) } },
      fitnet.schema.parse({ distance: 'l1' }),
      data,
    );
    const vars = convRegWeights(parts.connector) as unknown as Record<string, tf.Variable>;
    setWeights(vars, { kernel: w[0], bias: w[1], gamma: w[2], beta: w[3] });
    const v = fitnet.loss(
      lossContext(fitnet.schema.parse({ distance: 'l1' }), { hint: s }, { hint: t }, parts),
    );
    assertClose(await v.data(), [c.loss], `${c.name} descriptor`);
  });

  it('refuses maps it cannot connect, naming both shapes', () => {
    assert.throws(
      () =>
        fitnet.parts!(
          { student: { hint: [3, 3, 4] }, teacher: { hint: [8, 8, 6] } },
          fitnet.schema.parse({}),
          data,
        ),
      /fitnet: no connector from a student map \[3, 3, 4\] to a teacher map \[8, 8, 6\]/,
    );
    assert.throws(
      () =>
        fitnet.parts!({ student: { hint: [64] }, teacher: { hint: [64] } }, fitnet.schema.parse({}), data),
      /fitnet: no connector from a student map \[64\] to a teacher map \[64\]/,
    );
  });

  it('refuses a connector of the wrong width and maps of different batch sizes', () => {
    const w = {
      kernel: tf.zeros([1, 1, 3, 5]) as tf.Tensor4D,
      bias: tf.zeros([5]) as tf.Tensor1D,
      gamma: tf.ones([5]) as tf.Tensor1D,
      beta: tf.zeros([5]) as tf.Tensor1D,
    };
    assert.throws(
      () => fitnetLoss(tf.zeros([2, 4, 4, 3]), tf.zeros([2, 4, 4, 6]), w),
      /fitnetLoss: the connector maps to 5 channels, the teacher map \[2, 4, 4, 6\] has 6/,
    );
    assert.throws(
      () => fitnetLoss(tf.zeros([2, 4, 4, 4]), tf.zeros([2, 4, 4, 5]), w),
      /convReg: a \[4, 4, 4\] -> \[4, 4, 5\] connector needs kernel \[1, 1, 4, 5\]/,
    );
    assert.throws(
      () => fitnetLoss(tf.zeros([2, 4, 4, 3]), tf.zeros([3, 4, 4, 5]), w),
      /fitnetLoss: .*\[2, 4, 4, 3\].*\[3, 4, 4, 5\]/,
    );
  });
});
