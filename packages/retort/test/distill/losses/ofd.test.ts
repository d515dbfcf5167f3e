import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import {
  type OfdConfig,
  type OfdParts,
  type OfdRole,
  ofd,
  ofdConnectorWeights,
  ofdEmpiricalMargins,
  ofdLoss,
  ofdMargin,
} from '../../../src/distill/losses/ofd.js';
import { partWeight } from '../../../src/distill/losses/parts.js';
import type { LossContext, TapShapes } from '../../../src/distill/losses/types.js';
import {
  BACKENDS,
  featureCases,
  hwio,
  lossContext,
  nhwcMaps,
  setWeights,
  tapShape,
} from './feature-golden.js';
import { assertClose } from './golden.js';

/** Stage maps NCHW, 1x1 kernels OIHW. */
interface OfdCase {
  name: string;
  student_shapes: number[][];
  teacher_shapes: number[][];
  student: number[][];
  teacher: number[][];
  kernels: number[][];
  gammas: number[][];
  betas: number[][];
  teacher_bn_gammas: number[][];
  teacher_bn_betas: number[][];
  margins: number[][];
  loss: number;
  grad_student: number[][];
  grad_kernels: number[][];
  grad_gammas: number[][];
  grad_betas: number[][];
}
const cases = featureCases<OfdCase>('ofd');

function load(c: OfdCase) {
  const kernelShape = (i: number) => [c.teacher_shapes[i]![1]!, c.student_shapes[i]![1]!, 1, 1];
  return {
    s: nhwcMaps(c.student, c.student_shapes),
    t: nhwcMaps(c.teacher, c.teacher_shapes),
    connectors: c.kernels.map((k, i) => ({
      kernel: hwio(k, kernelShape(i)),
      gamma: tf.tensor1d(c.gammas[i]!),
      beta: tf.tensor1d(c.betas[i]!),
    })),
    grads: {
      student: nhwcMaps(c.grad_student, c.student_shapes),
      kernels: c.grad_kernels.map((k, i) => hwio(k, kernelShape(i))),
    },
  };
}

/**
 * ofdLoss on case c's inputs against its PyTorch golden: the value and the gradients with respect to
 * the student maps and every connector weight.
 */
async function expectGolden(
  c: OfdCase,
  { s, t, connectors, grads }: ReturnType<typeof load>,
  margins: readonly tf.Tensor1D[] | 'empirical',
  reduction?: 'sum' | 'mean',
): Promise<void> {
  const k = s.length;
  const f = (...xs: tf.Tensor[]) =>
    ofdLoss(
      xs.slice(0, k) as tf.Tensor4D[],
      t,
      [0, 1, 2].slice(0, k).map((i) => ({
        kernel: xs[k + 3 * i] as tf.Tensor4D,
        gamma: xs[k + 3 * i + 1] as tf.Tensor1D,
        beta: xs[k + 3 * i + 2] as tf.Tensor1D,
      })),
      margins,
      reduction,
    );
  const ws = connectors.flatMap((w) => [w.kernel, w.gamma, w.beta]);
  assertClose(await f(...s, ...ws).data(), [c.loss], `${c.name} loss`);
  const got = tf.grads(f)([...s, ...ws]);
  for (let i = 0; i < k; i++) {
    assertClose(await got[i]!.data(), await grads.student[i]!.data(), `${c.name} d / d s${i + 1}`);
    assertClose(
      await got[k + 3 * i]!.data(),
      await grads.kernels[i]!.data(),
      `${c.name} d / d kernel${i + 1}`,
    );
    assertClose(await got[k + 3 * i + 1]!.data(), c.grad_gammas[i]!, `${c.name} d / d gamma${i + 1}`);
    assertClose(await got[k + 3 * i + 2]!.data(), c.grad_betas[i]!, `${c.name} d / d beta${i + 1}`);
  }
}

for (const backend of BACKENDS) {
  describe(`OFD vs PyTorch (Heo et al.'s overhaul code) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: margins from BN gamma/beta, value and gradients (student maps, connectors)`, async () => {
        await tf.setBackend(backend);
        for (const [i, m] of c.margins.entries())
          assertClose(
            ofdMargin(c.teacher_bn_gammas[i]!, c.teacher_bn_betas[i]!),
            m,
            `${c.name} margins ${i + 1}`,
          );
        const margins = c.margins.map((m) => tf.tensor1d(m));
        await expectGolden(c, load(c), margins);
      });
    }
  });
}

describe('OFD descriptor', () => {
  const data = { numExamples: 1, numClasses: 10, batchSize: 8, seed: 0 };
  const c = cases[0]!;
  const stageShapes = (shapes: number[][]) => ({
    stage1: tapShape(shapes[0]!),
    stage2: tapShape(shapes[1]!),
    stage3: tapShape(shapes[2]!),
  });
  const shapes = {
    student: stageShapes(c.student_shapes),
    teacher: {
      ...stageShapes(c.teacher_shapes),
      bn1: tapShape(c.teacher_shapes[0]!),
      bn2: tapShape(c.teacher_shapes[1]!),
      bn3: tapShape(c.teacher_shapes[2]!),
    },
  } as unknown as TapShapes<OfdRole>;
  const ctx = (
    student: tf.Tensor[],
    teacher: tf.Tensor[],
    bn: tf.Tensor[],
    parts: OfdParts,
    config: OfdConfig = ofd.schema.parse({}),
  ) =>
    lossContext<OfdConfig, string, OfdParts>(
      config,
      { stage1: student[0]!, stage2: student[1]!, stage3: student[2]! },
      {
        stage1: teacher[0]!,
        stage2: teacher[1]!,
        stage3: teacher[2]!,
        bn1: bn[0]!,
        bn2: bn[1]!,
        bn3: bn[2]!,
      },
      parts,
    ) as unknown as LossContext<OfdConfig, OfdRole, OfdParts>;

  /** BN outputs whose per-channel batch mean is beta and standard deviation |gamma|. */
  function bnOutputs(seed: number): tf.Tensor4D[] {
    return c.teacher_shapes.map((sh, i) =>
      tf.tidy(() => {
        const z = tf.randomNormal([sh[0]!, sh[2]!, sh[3]!, sh[1]!], 0, 1, 'float32', seed + i);
        const { mean, variance } = tf.moments(z, [0, 1, 2]);
        const unit = tf.div(tf.sub(z, mean), tf.sqrt(variance));
        const gamma = tf.abs(tf.tensor1d(c.teacher_bn_gammas[i]!));
        return tf.add(tf.mul(unit, gamma), tf.tensor1d(c.teacher_bn_betas[i]!)) as tf.Tensor4D;
      }),
    );
  }

  it('is strict, taps three stages and the teacher BN before each stage ReLU, builds connectors as the authors', async () => {
    await tf.setBackend('native');
    assert.deepEqual(ofd.schema.parse({}), { reduction: 'sum', margin: 'bn' });
    assert.throws(() => ofd.schema.parse({ margin: -1 }));
    assert.throws(() => ofd.schema.parse({ reduction: 'max' }));
    assert.deepEqual(ofd.needs.taps, {
      student: ['stage1', 'stage2', 'stage3'],
      teacher: ['stage1', 'stage2', 'stage3', 'bn1', 'bn2', 'bn3'],
    });
    const parts = ofd.parts!(shapes, ofd.schema.parse({}), data);
    const w = ofdConnectorWeights(parts.stage3);
    assert.deepEqual(w.kernel.shape, [1, 1, 4, 5]);
    assert.ok(w.kernel instanceof tf.Variable);
    assert.deepEqual(Array.from(await w.gamma.data()), [1, 1, 1, 1, 1]);
    assert.equal(partWeight(parts.margins, 'set').trainable, false);
    assert.equal(partWeight(parts.margins, 'stage1').trainable, false);
  });

  it("estimates the authors' margins from BN outputs once, and then equals PyTorch", async () => {
    await tf.setBackend('native');
    const parts = ofd.parts!(shapes, ofd.schema.parse({}), data);
    const { s, t, connectors } = load(c);
    for (const [i, r] of (['stage1', 'stage2', 'stage3'] as const).entries())
      setWeights(ofdConnectorWeights(parts[r]) as unknown as Record<string, tf.Variable>, {
        ...connectors[i]!,
      });
    const v = ofd.loss(ctx(s, t, bnOutputs(7), parts));
    for (const [i, r] of (['stage1', 'stage2', 'stage3'] as const).entries())
      assertClose(await partWeight(parts.margins, r).data(), c.margins[i]!, `estimated ${r} margins`);
    assertClose(await v.data(), [c.loss], 'descriptor');
    // Later batches do not move them.
    const before = await partWeight(parts.margins, 'stage3').data();
    ofd.loss(
      ctx(
        s,
        t,
        bnOutputs(7).map((x) => tf.mul(x, 3)),
        parts,
      ),
    );
    assert.deepEqual(await partWeight(parts.margins, 'stage3').data(), before);
  });

  it('reduction mean with empirical margins through the descriptor: the BN taps are not read', async () => {
    await tf.setBackend('native');
    const cfg = ofd.schema.parse({ reduction: 'mean', margin: 'empirical' });
    const m = featureCases<OfdCase>('ofd_mean')[0]!;
    const parts = ofd.parts!(shapes, cfg, data);
    const { s, t, connectors } = load(m);
    for (const [i, r] of (['stage1', 'stage2', 'stage3'] as const).entries())
      setWeights(ofdConnectorWeights(parts[r]) as unknown as Record<string, tf.Variable>, {
        ...connectors[i]!,
      });
    const junk = bnOutputs(3).map((x) => tf.mul(x, Number.NaN));
    const v = ofd.loss(ctx(s, t, junk, parts, cfg));
    assertClose(await v.data(), [m.loss], 'descriptor, mean / empirical');
    assert.equal(partWeight(parts.margins, 'set').dataSync()[0], 0, 'the BN margins were never estimated');
  });

  it('names the stage and shapes on mismatches', () => {
    const k = {
      kernel: tf.zeros([1, 1, 2, 3]) as tf.Tensor4D,
      gamma: tf.ones([3]) as tf.Tensor1D,
      beta: tf.zeros([3]) as tf.Tensor1D,
    };
    assert.throws(
      () => ofdLoss([tf.zeros([2, 4, 4, 2])], [tf.zeros([2, 2, 2, 3])], [k], [tf.zeros([3]) as tf.Tensor1D]),
      /ofdLoss: stage 1: a 1x1 connector with kernel \[1, 1, 2, 3\] cannot map the student map \[2, 4, 4, 2\] onto the teacher map \[2, 2, 2, 3\]/,
    );
    assert.throws(
      () => ofdLoss([tf.zeros([2, 4, 4, 2])], [tf.zeros([2, 4, 4, 3])], [k], [tf.zeros([4]) as tf.Tensor1D]),
      /ofdLoss: stage 1: 4 margins for 3 teacher channels/,
    );
    const wrongBn = { ...shapes, teacher: { ...shapes.teacher, bn2: [2, 2, 9] } };
    assert.throws(
      () => ofd.parts!(wrongBn, ofd.schema.parse({}), data),
      /ofd: the teacher's bn2 tap \[2, 2, 9\] must have the channels of its stage2 tap \[2, 2, 4\]/,
    );
  });
});

/** The mean / empirical-margin variant (the project's first OFD formula) against its PyTorch golden. */
const meanCases = featureCases<OfdCase>('ofd_mean');

for (const backend of BACKENDS) {
  describe(`OFD, reduction mean and empirical margins, vs PyTorch on ${backend}`, () => {
    for (const c of meanCases) {
      it(`${c.name}: batch margins, value and gradients (student maps, connectors)`, async () => {
        await tf.setBackend(backend);
        const { s, t, connectors, grads } = load(c);
        for (const [i, m] of c.margins.entries()) {
          const got = ofdEmpiricalMargins(t[i]!);
          assertClose(await got.data(), m, `${c.name} margins ${i + 1}`);
          got.dispose();
        }
        await expectGolden(c, { s, t, connectors, grads }, 'empirical', 'mean');
        // The teacher gets no gradient through its margins either.
        const gt = tf.grad((x: tf.Tensor) =>
          ofdLoss(s, [x as tf.Tensor4D, t[1]!, t[2]!], connectors, 'empirical', 'mean'),
        )(t[0]!);
        assert.equal(Math.max(...Array.from(await gt.data(), Math.abs)), 0);
      });
    }
  });
}
