/**
 * An experiment's teacher cache made by shard jobs and a merge (run/teacher-shards.ts): the plan
 * names the file a run writes, 3 shards merged give that file's bytes, and the run then reuses it;
 * experiments that cache nothing have no plan.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../src/config/experiment.js';
import { buildModel } from '../../src/models/index.js';
import { runExperiment } from '../../src/run/experiment.js';
import { mergeTeacherCache, runTeacherShard, teacherCachePlan } from '../../src/run/teacher-shards.js';
import { saveModelWeights } from '../../src/train/checkpoint.js';
import { RetortError } from '../../src/util/errors.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-tshards-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const teacherCkpt = join(scratch, 'teacher.ckpt');

// The plain loader a cache is made from reads batches of 500 (data/build.ts): 1100 images are 3
// batches, the last of 100, one per shard.
const base = {
  name: 'kd',
  seed: 3,
  data: { dataset: 'fashion-mnist', batchSize: 64, trainLimit: 1100, testLimit: 100 },
  model: { name: 'mlp', options: { hidden: 16 } },
  teacher: { model: { name: 'lightnn' }, checkpoint: teacherCkpt },
  losses: [
    { name: 'ce', weight: 0.5 },
    { name: 'kd', weight: 0.5, T: 4 },
  ],
  optimizer: { name: 'adam', lr: 0.003 },
  epochs: 1,
};
// A feature loss on the teacher's embedding: its features are cached with the logits.
const withFeatures = {
  ...base,
  name: 'pkt',
  losses: [
    { name: 'ce', weight: 1 },
    { name: 'pkt', weight: 1, taps: { student: { feat: 'flatten' }, teacher: { feat: 'flatten' } } },
  ],
};

describe('teacher cache shards of an experiment', () => {
  for (const raw of [base, withFeatures]) {
    it(`${raw.name}: plan -> 3 shards -> merge is the run's own cache file, and the run reuses it`, async () => {
      await tf.setBackend('native');
      if (!existsSync(teacherCkpt))
        saveModelWeights(
          teacherCkpt,
          buildModel('lightnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 9 }),
          {},
        );
      const exp = experimentSchema.parse(raw);
      const sharded = join(scratch, `${raw.name}-sharded`);
      const plan = await teacherCachePlan(exp, `${raw.name}.yaml`, { runsRoot: sharded });
      assert.ok(plan !== null);
      assert.equal(plan.path, join(sharded, '.cache', 'teacher', `${plan.key}.ckpt`));
      assert.match(plan.key, /^[0-9a-f]{32}$/);
      assert.deepEqual(plan.layers, raw === base ? [] : ['flatten']);
      assert.deepEqual([plan.size, plan.batches, plan.batchSize, plan.stage], [1100, 3, 500, 'main']);
      const shards: string[] = [];
      for (let i = 0; i < 3; i++)
        shards.push(await runTeacherShard(exp, `${raw.name}.yaml`, i, 3, { runsRoot: sharded }));
      assert.deepEqual(
        shards.map((p) => p.slice(plan.cacheDir.length + 1)),
        [0, 1, 2].map((i) => `${plan.key}.shard-${i}-of-3.ckpt`),
      );
      assert.equal(await mergeTeacherCache(exp, `${raw.name}.yaml`, 3, { runsRoot: sharded }), plan.path);
      assert.deepEqual(readdirSync(plan.cacheDir), [`${plan.key}.ckpt`], 'the shards are gone');

      // A plain run elsewhere computes the cache in one pass: the same file, byte for byte.
      const single = join(scratch, `${raw.name}-single`);
      const lines: string[] = [];
      await runExperiment(exp, `${raw.name}.yaml`, { runsRoot: single, log: (l) => lines.push(l) });
      const own = join(single, '.cache', 'teacher', `${plan.key}.ckpt`);
      assert.ok(
        lines.some((l) => l.includes(`cached in ${own}`)),
        lines.join('\n'),
      );
      assert.ok(readFileSync(plan.path).equals(readFileSync(own)), 'merged shards = single-pass file');

      // The run next to the merged cache reuses it.
      const reused: string[] = [];
      await runExperiment(exp, `${raw.name}.yaml`, { runsRoot: sharded, log: (l) => reused.push(l) });
      assert.ok(
        reused.some((l) => l.includes(`reused from ${plan.path}`)),
        reused.join('\n'),
      );
      // With the merged file there, shard and merge jobs are no-ops returning it.
      assert.equal(await runTeacherShard(exp, 'x', 1, 3, { runsRoot: sharded }), plan.path);
      assert.equal(await mergeTeacherCache(exp, 'x', 3, { runsRoot: sharded }), plan.path);
    });
  }

  it('no plan when a run would not cache: no teacher, cacheTeacher false, flips, another scheme', async () => {
    const o = { runsRoot: join(scratch, 'none') };
    const { teacher: _t, ...noTeacher } = base;
    const cases = [
      { ...noTeacher, losses: [{ name: 'ce', weight: 1 }] },
      { ...base, cacheTeacher: false },
      { ...base, data: { ...base.data, hflip: true } },
      { ...base, losses: [{ name: 'ce', weight: 1 }] },
      { ...base, scheme: { name: 'takd', assistants: [{ name: 'mlp', options: { hidden: 32 } }] } },
    ];
    for (const c of cases) assert.equal(await teacherCachePlan(experimentSchema.parse(c), 'x.yaml', o), null);
    await assert.rejects(
      runTeacherShard(experimentSchema.parse(cases[2]), 'flip.yaml', 0, 2, o),
      (e: unknown) =>
        e instanceof RetortError &&
        /flip\.yaml: teacher shard 0 of 2: the experiment caches no teacher outputs \(.*horizontal flips/.test(
          e.message,
        ),
    );
    await assert.rejects(runTeacherShard(experimentSchema.parse(base), 'x.yaml', 2, 2, o), RetortError);
    assert.ok(!existsSync(o.runsRoot), 'nothing written');
  });
});
