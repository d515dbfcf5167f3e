import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adamUpdate, sgdUpdate } from '../src/index.js';
import { checkParity, nativeRuns, randTensor, requireNative, tf } from './parity.js';

// Sizes below and above the OpenMP threshold (65536), odd lengths.
const shapes = [[7], [33, 17], [300, 301]];

describe('fused optimizer updates: native vs cpu', () => {
  requireNative();
  for (const shape of shapes) {
    for (const decoupled of [false, true]) {
      it(`RetortAdamUpdate ${JSON.stringify(shape)} decoupled=${decoupled}`, () => {
        const run = () =>
          adamUpdate(
            randTensor(shape, 1),
            randTensor(shape, 2),
            randTensor(shape, 3),
            randTensor(shape, 4, 0, 1),
            {
              lr: 1e-2,
              beta1: 0.9,
              beta2: 0.999,
              eps: 1e-8,
              c1: 1 / (1 - 0.9 ** 3),
              c2: 1 / (1 - 0.999 ** 3),
              weightDecay: 0.05,
              decoupled,
            },
          );
        checkParity('adam', run);
        assert.equal(
          nativeRuns('RetortAdamUpdate', () => tf.tidy(run)),
          1,
        );
      });
    }
    for (const [nesterov, firstStep] of [
      [false, true],
      [false, false],
      [true, false],
    ] as const) {
      it(`RetortSgdUpdate ${JSON.stringify(shape)} nesterov=${nesterov} first=${firstStep}`, () => {
        const run = () =>
          sgdUpdate(randTensor(shape, 5), randTensor(shape, 6), randTensor(shape, 7), {
            lr: 0.1,
            momentum: 0.9,
            dampening: nesterov ? 0 : 0.1,
            weightDecay: 5e-4,
            nesterov,
            firstStep,
          });
        checkParity('sgd', run);
        assert.equal(
          nativeRuns('RetortSgdUpdate', () => tf.tidy(run)),
          1,
        );
      });
    }
  }
});
