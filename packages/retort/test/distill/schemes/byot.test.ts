/**
 * Self-distillation (scheme byot): heads go where the zoo's stages are, the deepest classifier
 * teaches them (its logits and feature get no gradient from the head terms), every head is saved as
 * an early-exit tfjs model that gives the accuracy reported, and a stopped run resumes exactly.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../../src/config/experiment.js';
import { buildData } from '../../../src/data/build.js';
import { byotHead, byotLayers, byotSchema, earlyExit } from '../../../src/distill/schemes/byot.js';
import { buildModel } from '../../../src/models/index.js';
import { runExperiment } from '../../../src/run/experiment.js';
import { loadLayersModelFile } from '../../../src/teachers/tfjs.js';
import { loadCheckpoint } from '../../../src/train/checkpoint.js';
import { evaluate } from '../../../src/train/trainer.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-byot-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const base = {
  seed: 6,
  data: { dataset: 'fashion-mnist', batchSize: 64, trainLimit: 384, testLimit: 256 },
  model: { name: 'resnet8' },
  losses: [{ name: 'ce', weight: 1 }],
  optimizer: { name: 'adam', lr: 0.003, weightDecay: 0 },
  schedule: { kind: 'constant' },
  epochs: 2,
  scheme: { name: 'byot' },
} as const;

describe('scheme byot', () => {
  it('puts heads on the stages between stem and last stage; an early exit shares their weights', async () => {
    await tf.setBackend('native');
    const m = buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10 });
    const { heads, feature } = byotLayers(m, 'resnet8', byotSchema.parse({}));
    assert.deepEqual(heads, ['layer1.0.relu_out', 'layer2.0.relu_out']);
    assert.equal(feature, 'avgpool');
    assert.throws(() => byotLayers(m, 'resnet8', byotSchema.parse({ heads: ['nope'] })), /no layer 'nope'/);
    const head = byotHead('h', [28, 28, 16], 64, 7, 10);
    assert.deepEqual(
      head.outputs.map((o) => o.shape),
      [
        [null, 64],
        [null, 10],
      ],
    );
    const exit = earlyExit(m, 'layer1.0.relu_out', head);
    const x = tf.randomNormal([2, 28, 28, 1], 0, 1, 'float32', 3);
    const before = (exit.predict(x) as tf.Tensor).dataSync().slice();
    const fc = head.getLayer('h.fc');
    fc.setWeights(fc.getWeights().map((w) => tf.add(w, 1)));
    const afterChange = (exit.predict(x) as tf.Tensor).dataSync();
    assert.notDeepEqual(Array.from(afterChange), Array.from(before), 'the exit uses the head weights');
  });

  it('trains the heads with the student, exports early exits, resumes exactly', async () => {
    await tf.setBackend('native');
    const straight = await runExperiment(experimentSchema.parse({ ...base, name: 'byot' }), 'byot.yaml', {
      runsRoot: scratch,
      log: () => {},
    });
    assert.deepEqual(Object.keys(straight.epochs[1]!.terms).sort(), [
      'ce',
      'head1/ce',
      'head1/kd',
      'head1/l2',
      'head2/ce',
      'head2/kd',
      'head2/l2',
    ]);
    const heads = straight['heads'] as { label: string; testTop1: number; dir: string; params: number }[];
    assert.equal(heads.length, 2);
    assert.ok(straight.epochs[1]!.others?.['head2']?.valTop1 !== undefined);
    const d = buildData(experimentSchema.parse({ ...base, name: 'x' }).data, 6);
    for (const h of heads) {
      assert.ok(h.testTop1 > 20, `${h.label} ${h.testTop1}`);
      const exported = await loadLayersModelFile(join(h.dir, 'model.json'));
      const t = await evaluate(exported, d.test);
      assert.ok(Math.abs(t.top1 - h.testTop1) < 1e-9, `${h.label}: exported ${t.top1} vs ${h.testTop1}`);
    }
    const ck = loadCheckpoint(join(straight.runDir, 'checkpoints', 'last.ckpt'));
    assert.ok(
      ck.header.tensors.some((t) => t.name.includes('byot_head2')),
      'heads are checkpointed',
    );

    const exp = experimentSchema.parse({ ...base, name: 'byot-resume' });
    await assert.rejects(
      runExperiment(exp, 'byot.yaml', {
        runsRoot: scratch,
        log: (l) => {
          if (l.startsWith('epoch 2/2')) throw new Error('stop');
        },
      }),
      /stop/,
    );
    const resumed = await runExperiment(exp, 'byot.yaml', { runsRoot: scratch, resume: true, log: () => {} });
    const x = loadCheckpoint(join(straight.runDir, 'checkpoints', 'last.ckpt'));
    const y = loadCheckpoint(join(resumed.runDir, 'checkpoints', 'last.ckpt'));
    for (const [i, t] of x.header.tensors.entries())
      assert.deepEqual(y.values.get(y.header.tensors[i]!.name)!.data, x.values.get(t.name)!.data, t.name);
    assert.ok(existsSync(join(resumed.runDir, 'heads', 'head1', 'model.json')));
  });

  it('refuses a loss with a teacher or taps, and a user model without heads named', async () => {
    await assert.rejects(
      runExperiment(experimentSchema.parse({ ...base, name: 'bad', losses: [{ name: 'kd' }] }), 'b.yaml', {
        runsRoot: scratch,
        log: () => {},
      }),
      /kd needs a teacher, taps or parts; in scheme byot the deepest classifier is the teacher/,
    );
    assert.ok(!existsSync(join(scratch, 'bad')));
  });
});
