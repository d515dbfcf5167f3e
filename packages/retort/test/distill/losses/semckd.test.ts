import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrThrow } from '../../../src/config/errors.js';
import {
  type MlpWeights,
  type PairRegressor,
  type SemckdWeights,
  semckd,
  semckdLoss,
  semckdWeights,
} from '../../../src/distill/losses/semckd.js';
import { lossRegistry } from '../../../src/distill/registry.js';
import { BACKENDS, hwio, lossContext, nhwc, tapShape } from './feature-golden.js';
import { assertClose, fixtureSection } from './golden.js';

/** PyTorch layouts: maps NCHW, Linear weights [out, in], kernels OIHW; weights flattened in order. */
interface SemckdCase {
  name: string;
  factor: number;
  student_shapes: number[][];
  teacher_shapes: number[][];
  student: number[][];
  teacher: number[][];
  weight_shapes: number[][];
  weights: number[][];
  loss: number;
  grad_student: number[][];
  grad_weights: number[][];
}
const cases = fixtureSection<SemckdCase[]>('review.json', 'semckd');

/** Retort's layout: Linear [out, in] -> dense [in, out]; OIHW -> HWIO; vectors unchanged. */
function weight(d: number[], shape: number[]): tf.Tensor {
  if (shape.length === 4) return hwio(d, shape);
  if (shape.length === 2) return tf.tidy(() => tf.transpose(tf.tensor2d(d, shape as [number, number])));
  return tf.tensor1d(d);
}

const MLP = ['w1', 'b1', 'w2', 'b2'] as const;
const REG = ['conv1', 'gamma1', 'beta1', 'conv2', 'gamma2', 'beta2', 'conv3'] as const;

/** The flat fixture order (queries, keys, regressors row-major) as SemckdWeights. */
function structured(flat: readonly tf.Tensor[], S: number, T: number): SemckdWeights {
  let k = 0;
  const take = <K extends string>(names: readonly K[]) =>
    Object.fromEntries(names.map((n) => [n, flat[k++]!])) as Record<K, tf.Tensor>;
  const query = Array.from({ length: S }, () => take(MLP) as unknown as MlpWeights);
  const key = Array.from({ length: T }, () => take(MLP) as unknown as MlpWeights);
  const regressors = Array.from({ length: S }, () =>
    Array.from({ length: T }, () => take(REG) as unknown as PairRegressor),
  );
  return { query, key, regressors };
}

function load(c: SemckdCase) {
  return {
    s: c.student.map((d, i) => nhwc(d, c.student_shapes[i]!)),
    t: c.teacher.map((d, i) => nhwc(d, c.teacher_shapes[i]!)),
    w: c.weights.map((d, i) => weight(d, c.weight_shapes[i]!)),
  };
}

for (const backend of BACKENDS) {
  describe(`SemCKD (cross-layer attention) vs PyTorch on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradients (student maps, embeddings, every regressor weight)`, async () => {
        await tf.setBackend(backend);
        const { s, t, w } = load(c);
        const S = s.length;
        const f = (...xs: tf.Tensor[]) =>
          semckdLoss(xs.slice(0, S) as tf.Tensor4D[], t, structured(xs.slice(S), S, t.length));
        assertClose(await f(...s, ...w).data(), [c.loss], `${c.name} loss`);
        const got = tf.grads(f)([...s, ...w]);
        for (const [i, g] of c.grad_student.entries())
          assertClose(
            await got[i]!.data(),
            await nhwc(g, c.student_shapes[i]!).data(),
            `${c.name} d / d student map ${i}`,
          );
        for (const [k, g] of c.grad_weights.entries())
          assertClose(
            await got[S + k]!.data(),
            await weight(g, c.weight_shapes[k]!).data(),
            `${c.name} d / d weight ${k} [${c.weight_shapes[k]!.join(', ')}]`,
          );
        // The teacher's maps are constants.
        const gt = tf.grads((...xs: tf.Tensor[]) =>
          semckdLoss(s, xs as tf.Tensor4D[], structured(w, S, t.length)),
        )(t);
        for (const g of gt) assert.equal(tf.max(tf.abs(g)).dataSync()[0], 0);
      });
    }
  });
}

describe('SemCKD descriptor', () => {
  const c = cases[0]!;
  const shapes = {
    student: {
      stage1: tapShape(c.student_shapes[0]!),
      stage2: tapShape(c.student_shapes[1]!),
      stage3: tapShape(c.student_shapes[2]!),
    },
    teacher: {
      stage1: tapShape(c.teacher_shapes[0]!),
      stage2: tapShape(c.teacher_shapes[1]!),
      stage3: tapShape(c.teacher_shapes[2]!),
    },
  };
  const data = { numExamples: 100, numClasses: 10, batchSize: c.student_shapes[0]![0]!, seed: 3 };

  it('registered; factor 4 by default; strict; taps three stages on each side', () => {
    assert.equal(lossRegistry.get('semckd'), semckd);
    assert.deepEqual(semckd.schema.parse({}), { factor: 4 });
    assert.throws(() => parseOrThrow(semckd.schema, { beta: 400 }, 'x.yaml losses[1]'), /unknown key 'beta'/);
    assert.deepEqual(semckd.needs, {
      taps: { student: ['stage1', 'stage2', 'stage3'], teacher: ['stage1', 'stage2', 'stage3'] },
    });
  });

  it('sizes the embeddings by the batch and the regressors by the pair; refuses another batch size', async () => {
    await tf.setBackend('native');
    const parts = semckd.parts!(shapes, semckd.schema.parse({}), data);
    const w = semckdWeights(parts.semckd);
    assert.deepEqual(w.query[0]!.w1.shape, [8, 4]);
    assert.deepEqual(w.key[2]!.w2.shape, [4, 2]);
    assert.deepEqual(w.regressors[0]![2]!.conv1.shape, [1, 1, 2, 10]);
    assert.deepEqual(w.regressors[2]![0]!.conv3.shape, [1, 1, 6, 3]);
    const { s, t } = load(c);
    const half = (x: tf.Tensor4D) => tf.slice(x, 0, 4) as tf.Tensor4D;
    assert.throws(() => semckdLoss(s.map(half), t.map(half), w), /sized for batches of 8; got a batch of 4/);
    assert.throws(
      () => semckd.parts!(shapes, semckd.schema.parse({ factor: 16 }), data),
      /batch size 8 \/ factor 16 leaves no embedding width/,
    );
  });

  it('the descriptor with fixture weights in its live part gives the pure loss; every weight trains', async () => {
    await tf.setBackend('native');
    const cfg = semckd.schema.parse({});
    const parts = semckd.parts!(shapes, cfg, data);
    const live = semckdWeights(parts.semckd);
    const { s, t, w } = load(c);
    const fixture = structured(w, 3, 3);
    const pairs: [tf.Tensor, tf.Tensor][] = [
      ...live.query.flatMap((m, i) => MLP.map((k) => [m[k], fixture.query[i]![k]] as [tf.Tensor, tf.Tensor])),
      ...live.key.flatMap((m, i) => MLP.map((k) => [m[k], fixture.key[i]![k]] as [tf.Tensor, tf.Tensor])),
      ...live.regressors.flatMap((row, i) =>
        row.flatMap((r, j) =>
          REG.map((k) => [r[k], fixture.regressors[i]![j]![k]] as [tf.Tensor, tf.Tensor]),
        ),
      ),
    ];
    for (const [v, x] of pairs) (v as tf.Variable).assign(x);
    const byStage = (m: tf.Tensor4D[]) => ({ stage1: m[0]!, stage2: m[1]!, stage3: m[2]! });
    const ctx = lossContext(cfg, byStage(s), byStage(t), parts);
    assertClose(await semckd.loss(ctx).data(), [c.loss], 'descriptor');
    const vars = pairs.map(([v]) => v as tf.Variable);
    const { grads } = tf.variableGrads(() => semckd.loss(ctx), vars);
    assert.equal(Object.keys(grads).length, vars.length);
    assert.ok(Object.values(grads).every((g) => tf.max(tf.abs(g)).dataSync()[0]! > 0));
  });
});
