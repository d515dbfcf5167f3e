import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrThrow } from '../../../src/config/errors.js';
import { kdsvd, kdsvdLoss, rightSingular } from '../../../src/distill/losses/kdsvd.js';
import { assertClose } from './golden.js';
import { BACKENDS, lossContext, relationCases, retortLayout } from './relation-golden.js';

/** Maps per layer in PyTorch layout (NCHW). */
interface KdsvdCase {
  name: string;
  k: number;
  student_shapes: number[][];
  teacher_shapes: number[][];
  student: number[][];
  teacher: number[][];
  loss: number;
  grad_student: number[][];
}
const cases = relationCases<KdsvdCase>('kdsvd');

const layers = (data: number[][], shapes: number[][]) =>
  data.map((d, i) => retortLayout(d, shapes[i]!) as tf.Tensor4D);

function load(c: KdsvdCase) {
  return {
    s: layers(c.student, c.student_shapes),
    t: layers(c.teacher, c.teacher_shapes),
    gs: layers(c.grad_student, c.student_shapes),
  };
}

for (const backend of BACKENDS) {
  describe(`KDSVD vs PyTorch (Lee et al. / RepDistiller's KDSVD, torch.svd reference) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradient through the singular vectors`, async () => {
        await tf.setBackend(backend);
        const { s, t, gs } = load(c);
        const f = (...xs: tf.Tensor[]) => kdsvdLoss(xs as tf.Tensor4D[], t, { k: c.k });
        const value = f(...s);
        assertClose(await value.data(), [c.loss], `${c.name} loss`);
        const got = tf.grads(f)(s);
        for (const [i, g] of got.entries())
          assertClose(await g.data(), await gs[i]!.data(), `${c.name} d/d student layer ${i}`);
        tf.dispose([...s, ...t, ...gs, value, ...got]);
      });
    }

    it('the teacher gets no gradient, and nothing leaks', async () => {
      await tf.setBackend(backend);
      const c = cases[0]!;
      const { s, t, gs } = load(c);
      const before = tf.memory().numTensors;
      const got = tf.grads((...xs: tf.Tensor[]) => kdsvdLoss(s, xs as tf.Tensor4D[], { k: 1 }))(t);
      for (const g of got) assert.equal(Math.max(...Array.from(await g.data(), Math.abs)), 0);
      tf.dispose(got);
      tf.dispose(kdsvdLoss(s, t, { k: 1 }));
      assert.equal(tf.memory().numTensors, before, 'tensors left behind');
      tf.dispose([...s, ...t, ...gs]);
    });
  });
}

describe('KDSVD singular vectors', () => {
  it('at most min(HW, C) vectors, as torch.svd; unit columns; values normalised', async () => {
    await tf.setBackend('native');
    const x = tf.randomNormal([2, 2, 2, 6], 0, 1, 'float32', 5) as tf.Tensor4D; // HW 4 < C 6
    const { v, s } = rightSingular(x, 5);
    assert.deepEqual(v.shape, [2, 6, 4]);
    assert.deepEqual(s.shape, [2, 4]);
    const norms = tf.sum(tf.square(v), 1);
    assertClose(await norms.data(), new Array(8).fill(1), 'unit columns');
    assertClose(await tf.sum(tf.square(s), 1).data(), [1, 1], 'unit singular value vectors');
    tf.dispose([x, v, s, norms]);
  });
});

describe('KDSVD descriptor', () => {
  it("defaults: RepDistiller's k = 1; unknown keys and bad values fail", () => {
    assert.deepEqual(kdsvd.schema.parse({}), { k: 1 });
    assert.throws(() => parseOrThrow(kdsvd.schema, { K: 1 }, 'exp.yaml losses[1]'), /unknown key 'K'/);
    assert.throws(() => kdsvd.schema.parse({ k: 0 }));
    assert.throws(() => kdsvd.schema.parse({ k: 1.5 }));
  });

  it('taps stage1..stage3 on both sides, no parts; the loss through it is the fixture', async () => {
    await tf.setBackend('native');
    const roles = ['stage1', 'stage2', 'stage3'] as const;
    assert.deepEqual(kdsvd.needs, { taps: { student: roles, teacher: roles } });
    assert.equal(kdsvd.parts, undefined);
    const c = cases.find((x) => x.student.length === 3)!;
    const { s, t, gs } = load(c);
    const sv = s.map((x) => tf.variable(x));
    const byRole = (xs: tf.Tensor[]) => Object.fromEntries(roles.map((r, i) => [r, xs[i]!])) as never;
    const { value, grads } = tf.variableGrads(() =>
      kdsvd.loss(lossContext(kdsvd.schema.parse({ k: c.k }), byRole(sv), byRole(t), {})),
    );
    assertClose(await value.data(), [c.loss], 'descriptor loss');
    for (const [i, v] of sv.entries())
      assertClose(await grads[v.name]!.data(), await gs[i]!.data(), `descriptor d/d ${roles[i]}`);
    tf.dispose([...s, ...t, ...gs, ...sv, value, ...Object.values(grads)]);
  });

  it('bad inputs name the method and the shapes', () => {
    const z = (...shape: [number, number, number, number]) => tf.zeros<tf.Rank.R4>(shape);
    assert.throws(
      () => kdsvdLoss([z(2, 3, 3, 2), z(2, 3, 3, 3)], [z(2, 3, 3, 2), z(2, 3, 3, 4)], { k: 1 }),
      /kdsvdLoss: expected .*equal channel counts layer by layer.*got student \[2, 3, 3, 2\], \[2, 3, 3, 3\] and teacher \[2, 3, 3, 2\], \[2, 3, 3, 4\]/,
    );
    assert.throws(() => kdsvdLoss([z(2, 3, 3, 2)], [z(2, 3, 3, 2)], { k: 1 }), /at least 2 layers/);
    assert.throws(
      () => kdsvdLoss([z(2, 3, 3, 2), z(3, 3, 3, 3)], [z(2, 3, 3, 2), z(2, 3, 3, 3)], { k: 1 }),
      /kdsvdLoss: .*got student \[2, 3, 3, 2\], \[3, 3, 3, 3\]/,
    );
  });
});
