import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { Adam, SGD } from '../../src/train/optimizers.js';

interface Fixture {
  p0: number[];
  shape: [number, number];
  grads: number[][];
  runs: Record<string, { optimizer: string; config: Record<string, unknown>; steps: number[][] }>;
}
const fx = JSON.parse(readFileSync(new URL('../fixtures/optim.json', import.meta.url), 'utf8')) as Fixture;

function make(name: string): tf.Optimizer {
  const c = fx.runs[name]!.config as Record<string, number | boolean | number[]>;
  const lr = c['lr'] as number;
  switch (name) {
    case 'sgd_plain':
    case 'sgd_plain_wd':
    case 'sgd_momentum':
    case 'sgd_nesterov_wd':
      return new SGD({
        lr,
        momentum: (c['momentum'] as number) ?? 0,
        dampening: (c['dampening'] as number) ?? 0,
        weightDecay: (c['weight_decay'] as number) ?? 0,
        nesterov: (c['nesterov'] as boolean) ?? false,
      });
    default: {
      const betas = (c['betas'] as number[] | undefined) ?? [0.9, 0.999];
      return new Adam({
        lr,
        beta1: betas[0]!,
        beta2: betas[1]!,
        eps: (c['eps'] as number) ?? 1e-8,
        weightDecay: (c['weight_decay'] as number) ?? (name === 'adamw' ? 0.01 : 0),
        decoupled: name === 'adamw',
      });
    }
  }
}

function maxRelErr(a: Float32Array | number[], b: number[]): number {
  let m = 0;
  let ref = 0;
  for (let i = 0; i < b.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
    ref = Math.max(ref, Math.abs(b[i]!));
  }
  return m / ref;
}

for (const backend of ['cpu', 'native']) {
  describe(`optimizers match torch.optim on ${backend}`, () => {
    for (const name of Object.keys(fx.runs)) {
      it(name, async () => {
        await tf.setBackend(backend);
        const p = tf.variable(tf.tensor2d(fx.p0, fx.shape));
        const opt = make(name);
        for (const [s, g] of fx.grads.entries()) {
          tf.tidy(() => opt.applyGradients({ [p.name]: tf.tensor2d(g, fx.shape) }));
          const err = maxRelErr(p.dataSync() as Float32Array, fx.runs[name]!.steps[s]!);
          assert.ok(err <= 1e-5, `${name} step ${s + 1}: relative error ${err.toExponential(2)}`);
        }
        // State survives a save/restore round trip: a fresh optimizer restored from the saved state
        // (renamed onto a copy q of p) takes the same next step as the original.
        const q = tf.variable(p.clone());
        const saved = (await opt.getWeights()).map((w) => ({
          name: w.name.replace(p.name, q.name),
          tensor: w.tensor.clone(),
        }));
        const clone = make(name);
        await clone.setWeights(saved);
        tf.tidy(() => opt.applyGradients({ [p.name]: tf.tensor2d(fx.grads[0]!, fx.shape) }));
        tf.tidy(() => clone.applyGradients({ [q.name]: tf.tensor2d(fx.grads[0]!, fx.shape) }));
        assert.ok(
          maxRelErr(q.dataSync() as Float32Array, Array.from(p.dataSync())) <= 1e-6,
          `${name}: restored state`,
        );
        tf.dispose(saved.map((w) => w.tensor));
        tf.dispose([p, q]);
        opt.dispose();
        clone.dispose();
      });
    }
  });
}

it('SGD rejects nesterov without momentum, as torch does', () => {
  assert.throws(() => new SGD({ lr: 0.1, nesterov: true }), /nesterov needs momentum > 0/);
});
