import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { ab, abLoss } from '../../../src/distill/losses/ab.js';
import { type ConvRegWeights, convRegWeights } from '../../../src/distill/losses/fitnet.js';
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

/** Stage maps NCHW; connectors (ConvReg without ReLU) OIHW, empty where the stage has none. */
interface AbCase {
  name: string;
  margin: number;
  connector: 'auto' | 'always';
  identity: boolean[];
  student_shapes: number[][];
  teacher_shapes: number[][];
  kernel_shapes: number[][];
  student: number[][];
  teacher: number[][];
  kernels: number[][];
  biases: number[][];
  gammas: number[][];
  betas: number[][];
  loss: number;
  grad_student: number[][];
  grad_kernels: number[][];
  grad_biases: number[][];
  grad_gammas: number[][];
  grad_betas: number[][];
}
const cases = featureCases<AbCase>('ab');

function load(c: AbCase) {
  const connectors: (ConvRegWeights | null)[] = c.identity.map((id, i) =>
    id
      ? null
      : {
          kernel: hwio(c.kernels[i]!, c.kernel_shapes[i]!),
          bias: tf.tensor1d(c.biases[i]!),
          gamma: tf.tensor1d(c.gammas[i]!),
          beta: tf.tensor1d(c.betas[i]!),
        },
  );
  return {
    s: nhwcMaps(c.student, c.student_shapes),
    t: nhwcMaps(c.teacher, c.teacher_shapes),
    connectors,
    gradStudent: nhwcMaps(c.grad_student, c.student_shapes),
  };
}

for (const backend of BACKENDS) {
  describe(`AB vs PyTorch (RepDistiller's ABLoss on its Connector) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradients (student maps, connectors)`, async () => {
        await tf.setBackend(backend);
        const { s, t, connectors, gradStudent } = load(c);
        const k = s.length;
        const live = connectors.flatMap((w) => (w ? [w.kernel, w.bias, w.gamma, w.beta] : []));
        const f = (...xs: tf.Tensor[]) => {
          let j = k;
          const conns = connectors.map((w) => {
            if (!w) return null;
            const [kernel, bias, gamma, beta] = xs.slice(j, j + 4);
            j += 4;
            return {
              kernel: kernel as tf.Tensor4D,
              bias: bias as tf.Tensor1D,
              gamma: gamma as tf.Tensor1D,
              beta: beta as tf.Tensor1D,
            };
          });
          return abLoss(xs.slice(0, k) as tf.Tensor4D[], t, conns, { margin: c.margin });
        };
        assertClose(await f(...s, ...live).data(), [c.loss], `${c.name} loss`);
        const got = tf.grads(f)([...s, ...live]);
        for (let i = 0; i < k; i++)
          assertClose(await got[i]!.data(), await gradStudent[i]!.data(), `${c.name} d / d s${i + 1}`);
        let j = k;
        for (const [i, w] of connectors.entries()) {
          if (!w) continue;
          const want = [
            hwio(c.grad_kernels[i]!, c.kernel_shapes[i]!),
            tf.tensor1d(c.grad_biases[i]!),
            tf.tensor1d(c.grad_gammas[i]!),
            tf.tensor1d(c.grad_betas[i]!),
          ];
          for (const [q, name] of ['kernel', 'bias', 'gamma', 'beta'].entries())
            assertClose(await got[j + q]!.data(), await want[q]!.data(), `${c.name} d / d ${name}${i + 1}`);
          j += 4;
        }
      });
    }
  });
}

describe('AB descriptor', () => {
  const data = { numExamples: 1, numClasses: 10, batchSize: 8, seed: 0 };
  const stageShapes = (shapes: number[][]) => ({
    stage1: tapShape(shapes[0]!),
    stage2: tapShape(shapes[1]!),
    stage3: tapShape(shapes[2]!),
  });

  it("margin 1 and RepDistiller's connectors by default; strict", () => {
    assert.deepEqual(ab.schema.parse({}), { margin: 1, connector: 'auto' });
    assert.throws(() => ab.schema.parse({ margin: 0 }));
    assert.throws(() => ab.schema.parse({ connector: '1x1' }));
    assert.deepEqual(ab.needs.taps, {
      student: ['stage1', 'stage2', 'stage3'],
      teacher: ['stage1', 'stage2', 'stage3'],
    });
  });

  it('builds a connector only where the tapped shapes differ (or everywhere with always)', () => {
    const shapes = {
      student: { stage1: [8, 8, 4], stage2: [4, 4, 8], stage3: [2, 2, 16] },
      teacher: { stage1: [4, 4, 6], stage2: [4, 4, 8], stage3: [2, 2, 24] },
    };
    const auto = ab.parts!(shapes, ab.schema.parse({}), data);
    assert.deepEqual(Object.keys(auto).sort(), ['stage1', 'stage3']);
    assert.deepEqual(convRegWeights(auto.stage1!).kernel.shape, [3, 3, 4, 6]);
    assert.deepEqual(convRegWeights(auto.stage3!).kernel.shape, [1, 1, 16, 24]);
    const always = ab.parts!(shapes, ab.schema.parse({ connector: 'always' }), data);
    assert.deepEqual(convRegWeights(always.stage2!).kernel.shape, [1, 1, 8, 8]);
  });

  for (const c of cases) {
    it(`${c.name}: loss through the descriptor equals PyTorch`, async () => {
      await tf.setBackend('native');
      const config = ab.schema.parse({ margin: c.margin, connector: c.connector });
      const parts = ab.parts!(
        { student: stageShapes(c.student_shapes), teacher: stageShapes(c.teacher_shapes) },
        config,
        data,
      );
      const { s, t, connectors } = load(c);
      for (const [i, r] of (['stage1', 'stage2', 'stage3'] as const).entries()) {
        const w = connectors[i];
        assert.equal(parts[r] === undefined, w === null, `${r}: connector iff the fixture has one`);
        if (w && parts[r])
          setWeights(convRegWeights(parts[r]) as unknown as Record<string, tf.Variable>, { ...w });
      }
      const roles = (m: tf.Tensor[]) => ({ stage1: m[0]!, stage2: m[1]!, stage3: m[2]! });
      const v = ab.loss(lossContext(config, roles(s), roles(t), parts));
      assertClose(await v.data(), [c.loss], 'descriptor');
    });
  }

  it('names the stage and shapes when a stage without connector does not match, or a connector is impossible', () => {
    assert.throws(
      () => abLoss([tf.zeros([2, 4, 4, 3])], [tf.zeros([2, 4, 4, 5])], [null], { margin: 1 }),
      /abLoss: stage 1 has no connector, so the student map \[2, 4, 4, 3\] must match the teacher map \[2, 4, 4, 5\]/,
    );
    assert.throws(
      () =>
        ab.parts!(
          {
            student: { stage1: [3, 3, 4], stage2: [4, 4, 8], stage3: [2, 2, 16] },
            teacher: { stage1: [8, 8, 4], stage2: [4, 4, 8], stage3: [2, 2, 16] },
          },
          ab.schema.parse({}),
          data,
        ),
      /ab \(stage1\): no connector from a student map \[3, 3, 4\] to a teacher map \[8, 8, 4\]/,
    );
  });
});
