import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createRegistry, lossRegistry } from '../../src/distill/registry.js';

it('an unknown name fails and lists the known ones', () => {
  const r = createRegistry<number>('widget').add('b', 2).add('a', 1);
  assert.equal(r.get('a'), 1);
  assert.ok(r.has('b') && !r.has('c'));
  assert.deepEqual(r.list(), ['a', 'b']);
  assert.throws(() => r.get('c'), /^Error: unknown widget 'c' \(known: a, b\)$/);
  assert.throws(() => createRegistry<number>('widget').get('x'), /unknown widget 'x' \(known: none\)/);
});

it('a name registered twice is refused', () => {
  assert.throws(
    () => createRegistry<number>('widget').add('a', 1).add('a', 2),
    /widget 'a' is registered twice/,
  );
});

it('the loss registry holds kd, dkd, cosine and regressor under their own names', () => {
  for (const name of ['kd', 'dkd', 'cosine', 'regressor']) {
    assert.ok(lossRegistry.list().includes(name), name);
    assert.equal(lossRegistry.get(name).name, name);
  }
  assert.throws(
    () => lossRegistry.get('kdd'),
    /unknown distillation loss 'kdd' \(known: .*crd, dkd, fitnet, fsp, ft, irg, kd, kdsvd, logit-mse, nst, ofd, pkt, regressor, reviewkd, rkd, semckd, sp, tf-kd, vid/,
  );
});
