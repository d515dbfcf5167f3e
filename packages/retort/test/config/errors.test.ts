import assert from 'node:assert/strict';
import { it } from 'node:test';
import { z } from 'zod';
import { parseOrThrow } from '../../src/config/errors.js';

const schema = z.strictObject({
  epochs: z.number().int().positive().default(10),
  optimizer: z.strictObject({ name: z.enum(['sgd', 'adam']), lr: z.number() }).optional(),
  losses: z.array(z.strictObject({ name: z.string(), weight: z.number().default(1) })).default([]),
});

it('unknown keys are named with their path and the valid keys', () => {
  assert.throws(
    () => parseOrThrow(schema, { epochs: 3, optimiser: {} }, 'exp.yaml'),
    /^RetortError: exp\.yaml: unknown key 'optimiser' at \(top level\) \(valid keys: epochs, optimizer, losses\)$/,
  );
  assert.throws(
    () => parseOrThrow(schema, { optimizer: { name: 'sgd', lr: 0.1, momentun: 0.9 } }, 'exp.yaml'),
    /unknown key 'momentun' at optimizer \(valid keys: name, lr\)/,
  );
  assert.throws(
    () => parseOrThrow(schema, { losses: [{ name: 'kd', wieght: 2 }] }, 'exp.yaml'),
    /unknown key 'wieght' at losses\[0\] \(valid keys: name, weight\)/,
  );
});

it('type errors name the key; defaults fill in', () => {
  assert.throws(() => parseOrThrow(schema, { epochs: -1 }, 'e.json'), /e\.json: epochs: /);
  assert.deepEqual(parseOrThrow(schema, {}, 'x'), { epochs: 10, losses: [] });
});
