/**
 * Born-again networks (scheme born-again): generation 1 learns from the labels, generation 2 from
 * generation 1 (frozen); generation 1 is saved as a loadable run folder, the ensemble is measured,
 * and a run stopped inside generation 2 resumes exactly without training generation 1 again.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../../src/config/experiment.js';
import { runExperiment } from '../../../src/run/experiment.js';
import { loadRun } from '../../../src/run/load.js';
import { evaluate } from '../../../src/train/trainer.js';
import { assertSameCheckpoint } from './helpers.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-ban-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const base = {
  seed: 5,
  data: { dataset: 'fashion-mnist', batchSize: 64, trainLimit: 512, testLimit: 256 },
  model: { name: 'mlp', options: { hidden: 32 } },
  losses: [
    { name: 'ce', weight: 0.5 },
    { name: 'kd', weight: 0.5, T: 2 },
  ],
  optimizer: { name: 'adam', lr: 0.003, weightDecay: 0 },
  schedule: { kind: 'constant' },
  epochs: 2,
  scheme: { name: 'born-again', generations: 2, firstEpochs: 1 },
} as const;

describe('scheme born-again', () => {
  it('generation 2 learns from generation 1; gen 1 is a run folder; resume skips it and is exact', async () => {
    await tf.setBackend('native');
    const lines: string[] = [];
    const straight = await runExperiment(experimentSchema.parse({ ...base, name: 'ban' }), 'ban.yaml', {
      runsRoot: scratch,
      log: (l) => lines.push(l),
    });
    assert.equal(straight.scheme, 'born-again');
    assert.deepEqual(
      straight.stages.map((s) => [s.name, s.epochs, s.losses.join('+')]),
      [
        ['gen1/main', 1, 'ce'],
        ['gen2/main', 2, 'ce+kd'],
      ],
    );
    assert.ok(lines.some((l) => l.includes('generation 2 of 2, taught by generation 1')));
    // Generation 2's kd term is against a real teacher (generation 1), so it is not zero.
    assert.ok(straight.epochs[2]!.terms['kd']! > 1e-4, JSON.stringify(straight.epochs[2]));
    const gens = straight['generations'] as { label: string; dir: string; testTop1: number }[];
    assert.deepEqual(
      gens.map((g) => g.label),
      ['gen1'],
    );
    const g1 = await loadRun(gens[0]!.dir);
    assert.ok(Math.abs((await evaluate(g1.model, g1.data.test)).top1 - gens[0]!.testTop1) < 1e-9);
    assert.ok(gens[0]!.testTop1 > 40 && straight.testTop1 > 40, `${gens[0]!.testTop1} ${straight.testTop1}`);
    assert.ok((straight['ensembleTop1'] as number) > 40);

    const exp = experimentSchema.parse({ ...base, name: 'ban-resume' });
    await assert.rejects(
      runExperiment(exp, 'ban.yaml', {
        runsRoot: scratch,
        log: (l) => {
          if (l.startsWith('epoch 2/2')) throw new Error('stop');
        },
      }),
      /stop/,
    );
    assert.ok(existsSync(join(scratch, 'ban-resume', 'generations', 'gen1', 'model.ckpt')));
    const again: string[] = [];
    const resumed = await runExperiment(exp, 'ban.yaml', {
      runsRoot: scratch,
      resume: true,
      log: (l) => again.push(l),
    });
    assert.ok(
      again.some((l) => l.includes('generation 1 of 2 already trained')),
      again.join('\n'),
    );
    assertSameCheckpoint(join(straight.runDir, 'model.ckpt'), join(resumed.runDir, 'model.ckpt'));
    assert.deepEqual(
      resumed.epochs.map((e) => e.epoch),
      [1, 1, 2],
      'the records of generation 1 are kept',
    );

    // Stopped between generations (generation 1 done, generation 2 not yet checkpointed): generation
    // 2 starts from the RNG states generation 1 left, as in the straight run.
    const exp2 = experimentSchema.parse({ ...base, name: 'ban-between' });
    await assert.rejects(
      runExperiment(exp2, 'ban.yaml', {
        runsRoot: scratch,
        log: (l) => {
          if (l.includes('generation 2 of 2')) throw new Error('stop');
        },
      }),
      /stop/,
    );
    const between = await runExperiment(exp2, 'ban.yaml', { runsRoot: scratch, resume: true, log: () => {} });
    assertSameCheckpoint(join(straight.runDir, 'model.ckpt'), join(between.runDir, 'model.ckpt'));
  });

  it('refuses a teacher-bound loss in generation 1 and a teacher section', async () => {
    await assert.rejects(
      runExperiment(
        experimentSchema.parse({
          ...base,
          name: 'b1',
          scheme: { name: 'born-again', first: [{ name: 'kd' }] },
        }),
        'b.yaml',
        { runsRoot: scratch, log: () => {} },
      ),
      /scheme.first: kd needs a teacher, and generation 1 has none/,
    );
    await assert.rejects(
      runExperiment(
        experimentSchema.parse({ ...base, name: 'b2', teacher: { model: { name: 'mlp' }, checkpoint: 'x' } }),
        'b.yaml',
        { runsRoot: scratch, log: () => {} },
      ),
      /scheme born-again trains without a frozen teacher/,
    );
    assert.ok(!existsSync(join(scratch, 'b1')) && !existsSync(join(scratch, 'b2')));
  });
});
