/**
 * The stage registry: a new stage is one file (zero-smallest.ts) and one registerStage line, and runs
 * through runPipeline's stage loop in registry order, measured like the built-in stages; duplicate
 * and unknown names fail loudly, naming the known stages; config sections that match no stage, fail
 * their stage's schema, or ask for stages that undo each other are refused before anything runs.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { prunableKernels } from '../../../src/compress/prune/magnitude.js';
import { lowrank } from '../../../src/compress/stages/lowrank.js';
import { planStages, registerStage, stageByName, stages } from '../../../src/compress/stages/registry.js';
import type { StageDescriptor } from '../../../src/compress/stages/types.js';
import { dataSchema } from '../../../src/config/experiment.js';
import { buildData } from '../../../src/data/build.js';
import { buildModel } from '../../../src/models/index.js';
import {
  type PipelineConfig,
  pipelineSchema,
  runPipeline,
  type StageReport,
} from '../../../src/run/compress.js';
import { zeroSmallest, zeroSmallestSchema } from './zero-smallest.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-stages-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const BUILT_IN = [
  'prune-magnitude',
  'prune-structured',
  'lottery',
  'rigl',
  'lowrank',
  'tucker',
  'hash',
  'cluster',
  'mixed-precision',
  'quantize-ptq',
  'quantize-qat',
];
// zero-smallest and sneaky are the test's own stages, registered by earlier cases.
const KNOWN =
  /\(known: cluster, hash, lottery, lowrank, mixed-precision, prune-magnitude, prune-structured, quantize-ptq, quantize-qat, rigl, (sneaky, )?tucker/;

/** An untrained ResNet-8 and its copy as the teacher on a slice of Fashion-MNIST: no fine-tuning here. */
async function smallPipeline() {
  await tf.setBackend('native');
  const data = buildData(
    dataSchema.parse({ dataset: 'fashion-mnist', batchSize: 32, trainLimit: 64, testLimit: 64 }),
    0,
  );
  const make = () => buildModel('resnet8', { inputShape: data.shape, numClasses: data.numClasses });
  return { data, model: make(), teacher: make() };
}

describe('compression stage registry', () => {
  it('runs the built-in stages in the order prune -> lottery -> lowrank -> tucker -> hash -> cluster -> quantize', () => {
    assert.deepEqual(
      stages().map((s) => s.name),
      BUILT_IN,
    );
  });

  it('a new stage is one file and one registry line, run by runPipeline in registry order', async () => {
    registerStage(zeroSmallest, { before: 'quantize-ptq' });
    assert.deepEqual(
      stages().map((s) => s.name),
      [
        'prune-magnitude',
        'prune-structured',
        'lottery',
        'rigl',
        'lowrank',
        'tucker',
        'hash',
        'cluster',
        'mixed-precision',
        'zero-smallest',
        'quantize-ptq',
        'quantize-qat',
      ],
    );
    const { data, model, teacher } = await smallPipeline();
    // pipelineSchema knows the built-in keys only; a stage with a key of its own adds it there too.
    const cfg: PipelineConfig & { zeroSmallest: unknown } = {
      ...pipelineSchema.parse({
        name: 's1',
        student: { run: 'unused' },
        finetune: { epochs: 0 },
        export: [],
      }),
      zeroSmallest: zeroSmallestSchema.parse({ fraction: 0.1, layer: 'layer1.0.conv1' }),
    };
    const out = join(scratch, 's1');
    const logs: string[] = [];
    const reports = await runPipeline(cfg, { model, teacher, data }, out, (l) => logs.push(l));
    assert.deepEqual(
      reports.map((r) => r.stage),
      ['baseline', 'zero-smallest'],
    );
    for (const { layer, kernel } of prunableKernels(model)) {
      const zeros = Array.from(kernel.dataSync()).filter((v) => v === 0).length;
      assert.equal(zeros, layer === 'layer1.0.conv1' ? Math.floor(0.1 * kernel.size) : 0, layer);
    }
    assert.equal(reports[1]!.zeroWeights - reports[0]!.zeroWeights, Math.floor(0.1 * 2304));
    assert.ok(
      logs.includes('zero-smallest: 230 of 2304 weights of layer1.0.conv1 set to 0'),
      logs.join('\n'),
    );
    assert.ok(existsSync(join(out, 'zero-smallest.md')));
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { stages: StageReport[] };
    assert.deepEqual(
      results.stages.map((s) => s.stage),
      ['baseline', 'zero-smallest'],
    );
  });

  it('serves only what a stage declares: an undeclared fine-tuning fails naming the stage', async () => {
    const sneaky: StageDescriptor<unknown> = {
      ...zeroSmallest,
      name: 'sneaky',
      key: 'sneaky',
      run: async (ctx) => {
        await ctx.finetune(ctx.model);
        return {};
      },
    };
    registerStage(sneaky);
    const { data, model, teacher } = await smallPipeline();
    const cfg: PipelineConfig & { sneaky: unknown } = {
      ...pipelineSchema.parse({
        name: 's2',
        student: { run: 'unused' },
        finetune: { epochs: 0 },
        export: [],
      }),
      sneaky: { fraction: 0 },
    };
    await assert.rejects(
      runPipeline(cfg, { model, teacher, data }, join(scratch, 's2'), () => {}),
      /compression stage 'sneaky' calls ctx.finetune but does not declare needs.finetune/,
    );
  });

  it('a name registered twice fails loudly, and the order stays as it was', () => {
    const before = stages().map((s) => s.name);
    assert.throws(() => registerStage(lowrank), /compression stage 'lowrank' is registered twice/);
    assert.throws(
      () => registerStage({ ...zeroSmallest }, { before: 'cluster' }),
      /compression stage 'zero-smallest' is registered twice/,
    );
    assert.deepEqual(
      stages().map((s) => s.name),
      before,
    );
  });

  it('an unknown stage fails naming the known ones', () => {
    assert.throws(
      () => stageByName('prune'),
      new RegExp(`unknown compression stage 'prune' ${KNOWN.source}`),
    );
    assert.throws(
      () => registerStage({ ...zeroSmallest, name: 'late' }, { before: 'quantize' }),
      new RegExp(`unknown compression stage 'quantize' ${KNOWN.source}`),
    );
    assert.equal(
      stages().some((s) => s.name === 'late'),
      false,
    );
  });

  it('plans from the config sections, refusing what no stage runs, what a schema refuses, and stages that undo each other', () => {
    const plan = planStages({ prune: { kind: 'structured', fraction: 0.5 }, quantize: { mode: 'qat' } }, 'p');
    assert.deepEqual(
      plan.map((p) => p.stage.name),
      ['prune-structured', 'quantize-qat'],
    );
    assert.equal((plan[0]!.config as { criterion: string }).criterion, 'l1', 'parsed with its defaults');
    assert.throws(
      () => planStages({ prune: { kind: 'channels' } }, 'p'),
      /compress 'p': prune: no stage runs this section \(stages of prune: prune-magnitude \(kind unstructured\), prune-structured \(kind structured\)\)/,
    );
    assert.throws(
      () => planStages({ cluster: { clusters: 1 } }, 'p'),
      /compress 'p': cluster \(stage cluster\): cluster\.clusters: /,
    );
    assert.throws(
      () =>
        planStages(
          { prune: { kind: 'unstructured', sparsity: 0.5 }, lowrank: { rank: { energy: 0.9 } } },
          'p',
        ),
      /compress 'p': lowrank after unstructured pruning would refill the zeros/,
    );
    assert.throws(
      () => planStages({ cluster: { clusters: 4 }, quantize: { mode: 'qat' } }, 'p'),
      /compress 'p': quantize.mode qat would re-quantize the shared weights off their codebooks/,
    );
  });
});
