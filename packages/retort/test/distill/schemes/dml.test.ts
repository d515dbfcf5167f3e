/**
 * Online distillation (scheme dml): the mutual term's gradients reach only the peer it belongs to;
 * a run of two peers of different families trains both, saves the second as a loadable run folder,
 * measures their ensemble, and resumes exactly; what the scheme cannot serve is refused by name.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../../src/config/experiment.js';
import { kdLoss } from '../../../src/distill/losses/kd.js';
import { dmlSchema, mutualLoss } from '../../../src/distill/schemes/dml.js';
import { runExperiment } from '../../../src/run/experiment.js';
import { loadRun } from '../../../src/run/load.js';
import { loadCheckpoint } from '../../../src/train/checkpoint.js';
import { evaluate } from '../../../src/train/trainer.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-dml-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const data = { dataset: 'fashion-mnist', batchSize: 64, trainLimit: 512, testLimit: 256 };
const base = {
  seed: 4,
  data,
  model: { name: 'mlp', options: { hidden: 32 } },
  losses: [{ name: 'ce', weight: 1 }],
  optimizer: { name: 'adam', lr: 0.003, weightDecay: 0 },
  schedule: { kind: 'constant' },
  epochs: 2,
  scheme: { name: 'dml', peers: [{ name: 'lightnn' }] },
} as const;

function logits(seed: number): tf.Tensor2D[] {
  return [0, 1, 2].map((i) => tf.randomNormal([5, 4], 0, 2, 'float32', seed + i) as tf.Tensor2D);
}

describe('scheme dml: the mutual term', () => {
  for (const target of ['peers', 'ensemble'] as const) {
    it(`${target}: peer i's term moves peer i's logits only (targets detached)`, async () => {
      await tf.setBackend('native');
      const cfg = dmlSchema.parse({ target, T: 2 });
      const ls = logits(7);
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
        mutualLoss([a, b, c] as tf.Tensor2D[], 1, cfg),
      )(ls);
      assert.equal(tf.max(tf.abs(grads[0]!)).dataSync()[0], 0, 'no gradient to peer 1');
      assert.equal(tf.max(tf.abs(grads[2]!)).dataSync()[0], 0, 'no gradient to peer 3');
      assert.ok((tf.max(tf.abs(grads[1]!)).dataSync()[0] as number) > 1e-4, 'peer 2 gets a gradient');
      // The value: mean KD to each other peer, or KD to the mean logits.
      const want =
        target === 'peers'
          ? (kdLoss(ls[1]!, ls[0]!, { T: 2 }).dataSync()[0]! +
              kdLoss(ls[1]!, ls[2]!, { T: 2 }).dataSync()[0]!) /
            2
          : kdLoss(ls[1]!, tf.div(tf.addN(ls), 3) as tf.Tensor2D, { T: 2 }).dataSync()[0]!;
      const got = mutualLoss(ls, 1, cfg).dataSync()[0]!;
      assert.ok(Math.abs(got - want) <= 1e-6 * Math.abs(want), `${got} vs ${want}`);
    });
  }
});

describe('scheme dml: a run of two peers', () => {
  it('trains both peers, saves peer 2 as a run folder, measures the ensemble, resumes exactly', async () => {
    await tf.setBackend('native');
    const straight = await runExperiment(experimentSchema.parse({ ...base, name: 'dml' }), 'dml.yaml', {
      runsRoot: scratch,
      log: () => {},
    });
    assert.equal(straight.scheme, 'dml');
    const peers = straight['peers'] as { label: string; dir: string; testTop1: number; model: string }[];
    assert.equal(peers.length, 1);
    assert.equal(peers[0]!.model, 'lightnn');
    // Both learned: chance is 10%.
    assert.ok(straight.testTop1 > 40, `peer 1 ${straight.testTop1}`);
    assert.ok(peers[0]!.testTop1 > 40, `peer 2 ${peers[0]!.testTop1}`);
    const ens = straight['ensembleTop1'] as number;
    assert.ok(ens > 40 && ens <= 100, `ensemble ${ens}`);
    const rec = straight.epochs[1]!;
    assert.deepEqual(Object.keys(rec.terms).sort(), ['peer1/ce', 'peer1/dml', 'peer2/ce', 'peer2/dml']);
    assert.ok(rec.terms['peer2/dml']! > 0);
    assert.ok(rec.others?.['peer2']?.valTop1 !== undefined, 'peer 2 is evaluated each epoch');
    // Peer 2's folder is a run of its own: loadRun rebuilds it and its accuracy is the one reported.
    for (const f of ['config.json', 'model.ckpt', 'results.json'])
      assert.ok(existsSync(join(peers[0]!.dir, f)), f);
    const loaded = await loadRun(peers[0]!.dir);
    assert.equal(loaded.exp.model.name, 'lightnn');
    assert.equal(loaded.exp.scheme, undefined);
    const again = await evaluate(loaded.model, loaded.data.test);
    assert.ok(Math.abs(again.top1 - peers[0]!.testTop1) < 1e-9);
    // Both peers are in the checkpoint (they are trained together).
    const ck = loadCheckpoint(join(straight.runDir, 'checkpoints', 'last.ckpt'));
    assert.ok(
      ck.header.tensors.some((t) => t.name.startsWith('m1/')),
      'peer 2 checkpointed',
    );

    // Stopped after epoch 1's checkpoint, then resumed: the same weights as straight through.
    const exp = experimentSchema.parse({ ...base, name: 'dml-resume' });
    await assert.rejects(
      runExperiment(exp, 'dml.yaml', {
        runsRoot: scratch,
        log: (l) => {
          if (l.startsWith('epoch 2/2')) throw new Error('stop');
        },
      }),
      /stop/,
    );
    const resumed = await runExperiment(exp, 'dml.yaml', { runsRoot: scratch, resume: true, log: () => {} });
    const rPeers = resumed['peers'] as { dir: string }[];
    for (const [a, b] of [
      [join(straight.runDir, 'model.ckpt'), join(resumed.runDir, 'model.ckpt')],
      [join(peers[0]!.dir, 'model.ckpt'), join(rPeers[0]!.dir, 'model.ckpt')],
    ] as const) {
      const x = loadCheckpoint(a);
      const y = loadCheckpoint(b);
      // Layer names carry a per-process counter: compare in order.
      assert.equal(y.header.tensors.length, x.header.tensors.length);
      for (const [i, t] of x.header.tensors.entries())
        assert.deepEqual(
          y.values.get(y.header.tensors[i]!.name)!.data,
          x.values.get(t.name)!.data,
          `${b}: ${t.name}`,
        );
    }
    const results = JSON.parse(readFileSync(join(resumed.runDir, 'results.json'), 'utf8')) as {
      ensembleTop1: number;
    };
    assert.equal(results.ensembleTop1, ens);
  });

  it('target ensemble: each peer distils from the mean logits (terms named ens)', async () => {
    const r = await runExperiment(
      experimentSchema.parse({
        ...base,
        name: 'ens',
        epochs: 1,
        scheme: { name: 'dml', target: 'ensemble', T: 3, peers: [{ name: 'mlp', options: { hidden: 16 } }] },
      }),
      'ens.yaml',
      { runsRoot: scratch, log: () => {} },
    );
    assert.deepEqual(Object.keys(r.epochs[0]!.terms).sort(), [
      'peer1/ce',
      'peer1/ens',
      'peer2/ce',
      'peer2/ens',
    ]);
  });

  it('refuses a teacher, a loss that needs one, stages, and an unknown option, before any folder', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { teacher: { model: { name: 'deepnn' }, checkpoint: 'x.ckpt' } },
        /scheme dml trains without a frozen teacher/,
      ],
      [{ losses: [{ name: 'kd', T: 4 }] }, /kd needs a teacher; in scheme dml the peers teach each other/],
      [{ stages: [{ name: 'a', epochs: 1, losses: [{ name: 'ce' }] }] }, /scheme dml trains in one stage/],
      [{ scheme: { name: 'dml', peer: [] } }, /scheme \(dml\).*peer/s],
      [{ scheme: { name: 'dmll' } }, /unknown distillation scheme 'dmll' \(known: .*dml/],
    ];
    for (const [over, re] of cases) {
      const name = `bad-${cases.findIndex((c) => c[0] === over)}`;
      await assert.rejects(
        runExperiment(experimentSchema.parse({ ...base, name, ...over }), 'dml.yaml', {
          runsRoot: scratch,
          log: () => {},
        }),
        re,
      );
      assert.ok(!existsSync(join(scratch, name)), `${name}: no run folder`);
    }
  });
});
