import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrThrow } from '../../../src/config/errors.js';
import {
  type AbfWeights,
  abfWeights,
  REVIEW_LEVELS,
  reviewkd,
  reviewkdLoss,
  reviewkdWarmup,
} from '../../../src/distill/losses/reviewkd.js';
import { lossRegistry } from '../../../src/distill/registry.js';
import { BACKENDS, hwio, lossContext, nhwc, setWeights, tapShape } from './feature-golden.js';
import { assertClose, fixtureSection } from './golden.js';

/** PyTorch layouts; levels deepest first (the pooled vector, then the stage maps). */
interface ReviewCase {
  name: string;
  mid: number;
  factor: number;
  student_shapes: number[][];
  teacher_shapes: number[][];
  student: number[][];
  teacher: number[][];
  weight_shapes: number[][][];
  weights: number[][][];
  loss: number;
  grad_student: number[][];
  grad_weights: number[][][];
}
const cases = fixtureSection<ReviewCase[]>('review.json', 'reviewkd');

const FIELDS = ['conv1', 'gamma1', 'beta1', 'conv2', 'gamma2', 'beta2', 'attKernel', 'attBias'] as const;

/** A fixture tensor in Retort's layout: NCHW maps NHWC, OIHW kernels HWIO, vectors as they are. */
const feature = (d: number[], shape: number[]) => (shape.length === 4 ? nhwc(d, shape) : tf.tensor(d, shape));
const weight = (d: number[], shape: number[]) => (shape.length === 4 ? hwio(d, shape) : tf.tensor(d, shape));

function abfsOf(flat: tf.Tensor[], c: ReviewCase): AbfWeights[] {
  let k = 0;
  return c.weight_shapes.map((shapes) => {
    const w: Record<string, tf.Tensor> = {};
    for (const i of shapes.keys()) w[FIELDS[i]!] = flat[k++]!;
    return w as unknown as AbfWeights;
  });
}

for (const backend of BACKENDS) {
  describe(`ReviewKD (ABF + HCL) vs PyTorch on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradients (student levels, every ABF weight)`, async () => {
        await tf.setBackend(backend);
        const s = c.student.map((d, i) => feature(d, c.student_shapes[i]!));
        const t = c.teacher.map((d, i) => feature(d, c.teacher_shapes[i]!));
        const w = c.weights.flatMap((ws, i) => ws.map((d, j) => weight(d, c.weight_shapes[i]![j]!)));
        const f = (...xs: tf.Tensor[]) =>
          reviewkdLoss(xs.slice(0, s.length), t, abfsOf(xs.slice(s.length), c), c.factor);
        assertClose(await f(...s, ...w).data(), [c.loss], `${c.name} loss`);
        const got = tf.grads(f)([...s, ...w]);
        for (const [i, g] of c.grad_student.entries())
          assertClose(
            await got[i]!.data(),
            await feature(g, c.student_shapes[i]!).data(),
            `${c.name} d / d student level ${i}`,
          );
        const wantW = c.grad_weights.flatMap((gs, i) => gs.map((g, j) => weight(g, c.weight_shapes[i]![j]!)));
        for (const [k, g] of wantW.entries())
          assertClose(await got[s.length + k]!.data(), await g.data(), `${c.name} d / d weight ${k}`);
        // The teacher side is detached.
        const gt = tf.grads((...xs: tf.Tensor[]) => reviewkdLoss(s, xs, abfsOf(w, c), c.factor))(t);
        for (const g of gt) assert.equal(tf.max(tf.abs(g)).dataSync()[0], 0);
      });
    }
  });
}

describe('ReviewKD descriptor', () => {
  const data = { numExamples: 1, numClasses: 10, seed: 0, batchSize: 2 };
  const c = cases[0]!;
  // Tapped shapes by role from the fixture (levels deepest first: feat, stage3, stage2, stage1).
  const shapesOf = (all: number[][]) =>
    Object.fromEntries(
      REVIEW_LEVELS.map((l, i) => [l, all[i]!.length === 2 ? [all[i]![1]!] : tapShape(all[i]!)]),
    ) as Record<(typeof REVIEW_LEVELS)[number], number[]>;

  it('registered; defaults warm-up 20 and mid from the student vector; strict; roles', () => {
    assert.equal(lossRegistry.get('reviewkd'), reviewkd);
    assert.deepEqual(reviewkd.schema.parse({}), { warmup: 20, midChannels: null });
    assert.throws(() => parseOrThrow(reviewkd.schema, { mid: 4 }, 'x.yaml losses[1]'), /unknown key 'mid'/);
    assert.deepEqual(reviewkd.needs, {
      taps: {
        student: ['stage1', 'stage2', 'stage3', 'feat'],
        teacher: ['stage1', 'stage2', 'stage3', 'feat'],
      },
    });
    // mdistiller's min(epoch / warmup, 1), epochs counted from 1.
    assert.equal(reviewkdWarmup(0, 20), 1 / 20);
    assert.equal(reviewkdWarmup(9, 20), 0.5);
    assert.equal(reviewkdWarmup(30, 20), 1);
    assert.equal(reviewkdWarmup(0, 0), 1);
  });

  it('builds its ABFs from the tapped shapes; the deepest has no attention; mid = min(512, C)', () => {
    const parts = reviewkd.parts!(
      { student: shapesOf(c.student_shapes), teacher: shapesOf(c.teacher_shapes) },
      reviewkd.schema.parse({}),
      data,
    );
    const abfs = abfWeights(parts.abfs);
    assert.equal(abfs[0]!.attKernel, undefined);
    assert.deepEqual(abfs[0]!.conv1.shape, [1, 1, 5, 5]);
    assert.deepEqual(abfs[3]!.conv1.shape, [1, 1, 3, 5]);
    assert.deepEqual(abfs[3]!.conv2.shape, [3, 3, 5, 4]);
    assert.deepEqual(abfs[1]!.attKernel!.shape, [1, 1, 10, 2]);
    // Kaiming-uniform a = 1: |w| <= sqrt(3 / fan_in).
    assert.ok(Array.from(abfs[3]!.conv2.dataSync()).every((v) => Math.abs(v) <= Math.sqrt(3 / 45)));
  });

  it('the descriptor with fixture weights in its live part gives the pure loss, times the warm-up', async () => {
    await tf.setBackend('native');
    const cfg = reviewkd.schema.parse({ midChannels: c.mid, warmup: 4 });
    const parts = reviewkd.parts!(
      { student: shapesOf(c.student_shapes), teacher: shapesOf(c.teacher_shapes) },
      cfg,
      data,
    );
    const live = abfWeights(parts.abfs);
    for (const [i, ws] of c.weights.entries()) {
      const vars = live[i] as unknown as Record<string, tf.Variable>;
      setWeights(
        vars,
        Object.fromEntries(ws.map((d, j) => [FIELDS[j]!, weight(d, c.weight_shapes[i]![j]!)])),
      );
    }
    const byRole = (all: number[][], shapes: number[][]) =>
      Object.fromEntries(REVIEW_LEVELS.map((l, i) => [l, feature(all[i]!, shapes[i]!)])) as Record<
        (typeof REVIEW_LEVELS)[number],
        tf.Tensor
      >;
    const ctx = {
      ...lossContext(cfg, byRole(c.student, c.student_shapes), byRole(c.teacher, c.teacher_shapes), parts),
      epoch: 1,
    };
    // Epoch index 1 is the second epoch: factor 2 / 4.
    assertClose(await reviewkd.loss(ctx).data(), [(c.loss / c.factor) * 0.5], 'descriptor');
    // The ABFs train: their variables get gradients through the descriptor.
    const vars = live.flatMap((w) => Object.values(w).filter((v) => v !== undefined)) as tf.Variable[];
    const { grads } = tf.variableGrads(() => reviewkd.loss(ctx), vars);
    assert.equal(Object.keys(grads).length, vars.length);
    assert.ok(Object.values(grads).every((g) => tf.max(tf.abs(g)).dataSync()[0]! > 0));
  });

  it('refuses levels whose channels do not meet the teacher, naming both', () => {
    const x = tf.zeros([2, 4, 4, 3]) as tf.Tensor4D;
    const w: AbfWeights = {
      conv1: tf.zeros([1, 1, 3, 2]) as tf.Tensor4D,
      gamma1: tf.ones([2]) as tf.Tensor1D,
      beta1: tf.zeros([2]) as tf.Tensor1D,
      conv2: tf.zeros([3, 3, 2, 5]) as tf.Tensor4D,
      gamma2: tf.ones([5]) as tf.Tensor1D,
      beta2: tf.zeros([5]) as tf.Tensor1D,
    };
    assert.throws(() => reviewkdLoss([x], [tf.zeros([2, 4, 4, 6])], [w]), /gives 5 channels.*\[2, 4, 4, 6\]/);
    assert.throws(() => reviewkdLoss([x], [], [w]), /as many student levels/);
  });
});
