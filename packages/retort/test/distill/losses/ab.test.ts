import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { ab, abLoss, connectorWeights } from '../../../src/distill/losses/ab.js';
import { assertClose } from './golden.js';
import {
  asConnectors,
  BACKENDS,
  type ConnectorCase,
  connectorTensors,
  maps,
  methodCases,
} from './methods-golden.js';

const cases = methodCases<ConnectorCase>('ab');

for (const backend of BACKENDS) {
  describe(`AB vs PyTorch (RepDistiller's ABLoss on ConnectorConvBN) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradients (student maps, connectors)`, async () => {
        await tf.setBackend(backend);
        const s = maps(c.student, c.student_shapes);
        const t = maps(c.teacher, c.teacher_shapes);
        const w = connectorTensors(c);
        const k = s.length;
        const f = (...xs: tf.Tensor[]) =>
          abLoss(xs.slice(0, k) as tf.Tensor4D[], t, asConnectors(xs.slice(k)), { margin: 1 });
        assertClose(await f(...s, ...w).data(), [c.loss], `${c.name} loss`);
        const grads = tf.grads(f)([...s, ...w]);
        for (let i = 0; i < k; i++) {
          assertClose(await grads[i]!.data(), c.grad_student[i]!, `${c.name} d/d s${i}`);
          assertClose(await grads[k + 3 * i]!.data(), c.grad_kernels[i]!, `${c.name} d/d kernel${i}`);
          assertClose(await grads[k + 3 * i + 1]!.data(), c.grad_gammas[i]!, `${c.name} d/d gamma${i}`);
          assertClose(await grads[k + 3 * i + 2]!.data(), c.grad_betas[i]!, `${c.name} d/d beta${i}`);
        }
      });
    }
  });
}

describe('AB descriptor', () => {
  it('margin 1 by default; one connector per stage from the tapped channels', () => {
    assert.deepEqual(ab.schema.parse({}), { margin: 1 });
    const parts = ab.parts!(
      {
        student: { stage1: [8, 8, 4], stage2: [4, 4, 8], stage3: [2, 2, 16] },
        teacher: { stage1: [8, 8, 6], stage2: [4, 4, 12], stage3: [2, 2, 24] },
      },
      { margin: 1 },
      { numExamples: 1, numClasses: 10, seed: 0 },
    );
    assert.deepEqual(connectorWeights(parts.stage2).kernel.shape, [1, 1, 8, 12]);
  });
});
