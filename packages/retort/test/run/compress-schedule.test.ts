/**
 * `finetune.schedule`: the learning-rate schedule of every fine-tuning in `retort compress`
 * (cosine unless the config says otherwise), read back from the fine-tuning's metrics.jsonl.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../src/config/experiment.js';
import { pipelineSchema, runPipeline } from '../../src/run/compress.js';
import { runExperiment } from '../../src/run/experiment.js';
import { loadRun } from '../../src/run/load.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-ft-schedule-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Every metrics.jsonl under `dir`, as the lr of each epoch. */
function lrs(dir: string): number[][] {
  const out: number[][] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f === 'metrics.jsonl')
        out.push(
          readFileSync(p, 'utf8')
            .trim()
            .split('\n')
            .map((l) => (JSON.parse(l) as { lr: number }).lr),
        );
    }
  };
  walk(dir);
  return out;
}

describe('finetune.schedule', () => {
  it('defaults to cosine, takes a constant rate or a warm-up, and refuses unknown keys', () => {
    const base = { name: 'x', student: { run: 'r' } };
    const def = pipelineSchema.parse(base).finetune.schedule;
    assert.equal(def.kind, 'cosine');
    assert.equal(def.warmupEpochs, 0);
    const warm = pipelineSchema.parse({
      ...base,
      finetune: { schedule: { kind: 'cosine', warmupEpochs: 1 } },
    });
    assert.equal(warm.finetune.schedule.warmupEpochs, 1);
    // Cosine stays the kind when only other keys are given.
    const onlyWarm = pipelineSchema.parse({ ...base, finetune: { schedule: { warmupEpochs: 1 } } });
    assert.equal(onlyWarm.finetune.schedule.kind, 'cosine');
    assert.equal(
      pipelineSchema.parse({ ...base, finetune: { schedule: { kind: 'constant' } } }).finetune.schedule.kind,
      'constant',
    );
    assert.throws(
      () => pipelineSchema.parse({ ...base, finetune: { schedule: { kind: 'cosine', warmup: 1 } } }),
      /warmup/,
    );
  });

  it('is the rate each fine-tuning epoch ran at', async () => {
    await tf.setBackend('native');
    const exp = experimentSchema.parse({
      name: 'student',
      seed: 1,
      model: { name: 'lightnn' },
      data: { dataset: 'fashion-mnist', batchSize: 64, trainLimit: 256, testLimit: 128 },
      optimizer: { name: 'adam', lr: 0.003 },
      epochs: 1,
    });
    const r = await runExperiment(exp, 'student.yaml', { runsRoot: scratch, log: () => {} });
    const lastLrs: Record<string, number[]> = {};
    for (const schedule of [{ kind: 'constant' }, { kind: 'cosine' }]) {
      const cfg = pipelineSchema.parse({
        name: `ft-${schedule.kind}`,
        student: { run: r.runDir },
        prune: { kind: 'unstructured', sparsity: 0.5, schedule: 'one-shot' },
        finetune: { epochs: 2, schedule, optimizer: { name: 'sgd', lr: 0.01 } },
      });
      const s = await loadRun(r.runDir);
      const t = await loadRun(r.runDir);
      const dir = join(scratch, cfg.name);
      await runPipeline(cfg, { model: s.model, teacher: t.model, data: s.data }, dir, () => {});
      const found = lrs(dir);
      assert.equal(found.length, 1, `one fine-tuning in ${dir}`);
      lastLrs[schedule.kind] = found[0]!;
    }
    // The record holds the rate of each epoch's last step (4 steps of 64 images per epoch): the
    // rate set before step 3 of epoch 0 is cosine at 0.75 of 2 epochs, then at 1.75.
    assert.deepEqual(lastLrs['constant'], [0.01, 0.01]);
    const cos = (t: number) => (0.01 * (1 + Math.cos((Math.PI * t) / 2))) / 2;
    const [c1, c2] = lastLrs['cosine']!;
    assert.ok(Math.abs(c1! - cos(0.75)) < 1e-9, `cosine at 0.75 epochs: ${cos(0.75)}, got ${c1}`);
    assert.ok(Math.abs(c2! - cos(1.75)) < 1e-9, `cosine at 1.75 epochs: ${cos(1.75)}, got ${c2}`);
  });
});
