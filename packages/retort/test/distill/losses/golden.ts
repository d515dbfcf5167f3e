/** Shared by the loss golden tests: the PyTorch fixture file and the comparison rule. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import type { LossContext, Parts } from '../../../src/distill/losses/types.js';

/** The section `key` of test/fixtures/losses.json (written by make_loss_fixtures.py). */
export function lossFixture<T>(key: string): T {
  const all = JSON.parse(
    readFileSync(new URL('../../fixtures/losses.json', import.meta.url), 'utf8'),
  ) as Record<string, unknown>;
  if (!(key in all)) throw new Error(`losses.json has no section '${key}'; rerun make_loss_fixtures.py`);
  return all[key] as T;
}

/** The section `key` of test/fixtures/<file> (each family's generator writes its own file). */
export function fixtureSection<T>(file: string, key: string): T {
  const all = JSON.parse(readFileSync(new URL(`../../fixtures/${file}`, import.meta.url), 'utf8')) as Record<
    string,
    unknown
  >;
  if (!(key in all)) throw new Error(`${file} has no section '${key}'; rerun its generator script`);
  return all[key] as T;
}

/** Relative tolerance of every golden comparison. */
export const TOL = 1e-5;

/**
 * Checks got against a PyTorch reference: the largest per-element |got - want| over the reference's
 * largest magnitude must be <= 1e-5. A reference that is all zero (e.g. KD of identical uniform
 * logits) is held to an absolute 1e-7 instead: float32 rounding of O(1) terms.
 */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let err = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  if (scale < 1e-12) assert.ok(err <= 1e-7, `${what}: ${err.toExponential(2)} from a zero reference`);
  else assert.ok(err / scale <= TOL, `${what}: relative error ${(err / scale).toExponential(2)}`);
}

/** Both backends every golden test runs on. */
export const BACKENDS = ['cpu', 'native'] as const;

/** What a descriptor's loss sees for one batch, with logits and labels that it ignores. */
export function lossContext<C, R extends string, P extends Parts>(
  config: C,
  student: Record<R, tf.Tensor>,
  teacher: Record<R, tf.Tensor>,
  parts: P,
): LossContext<C, R, P> {
  const n = (Object.values(student) as tf.Tensor[])[0]!.shape[0]!;
  const logits = tf.zeros([n, 10]) as tf.Tensor2D;
  return {
    config,
    student: { logits, features: student },
    teacher: { logits, features: teacher },
    labels: tf.zeros([n], 'int32') as tf.Tensor1D,
    epoch: 0,
    indices: new Uint32Array(n),
    parts,
  };
}

/** Overwrites a part's live variables with fixture values (same shapes). */
