/**
 * runExperiment end to end on a slice of Fashion-MNIST (the Debian package the set-up installs): a
 * two-stage run (hint stage with a trainable regressor, then CE + KD + hint) from a saved teacher,
 * and buildOfflineTask's part sharing between stages.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { readRewindPoint } from '../../src/compress/lottery.js';
import { experimentSchema } from '../../src/config/experiment.js';
import { buildData } from '../../src/data/build.js';
import { buildOfflineTask, parseTerms } from '../../src/distill/schemes/offline.js';
import { buildModel } from '../../src/models/index.js';
import { runExperiment } from '../../src/run/experiment.js';
import { loadCheckpoint, loadModelWeights, saveModelWeights } from '../../src/train/checkpoint.js';
import { evaluate } from '../../src/train/trainer.js';
import { seedEverything, unseed } from '../../src/util/rng.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-exp-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const hint = {
  name: 'regressor',
  weight: 1,
  taps: { student: { hint: 'features.conv2' }, teacher: { hint: 'features.conv3' } },
};
const data = { dataset: 'fashion-mnist', batchSize: 64, trainLimit: 256, testLimit: 200 };
const info = { numExamples: 256, numClasses: 10, batchSize: 8, seed: 1 };

describe('experiments with stages', () => {
  it('a hint stage then CE + KD + hint: both stages run, results and the student are written', async () => {
    await tf.setBackend('native');
    const teacher = buildModel('deepnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 3 });
    const ckpt = join(scratch, 'teacher.ckpt');
    saveModelWeights(ckpt, teacher, { model: { name: 'deepnn' } });
    const exp = experimentSchema.parse({
      name: 'two-stage',
      seed: 2,
      model: { name: 'lightnn' },
      teacher: { model: { name: 'deepnn' }, checkpoint: ckpt },
      data,
      optimizer: { name: 'adam', lr: 0.001, weightDecay: 0 },
      stages: [
        { name: 'hint', epochs: 1, losses: [hint] },
        {
          name: 'main',
          epochs: 1,
          losses: [{ name: 'ce', weight: 1 }, { name: 'kd', weight: 0.9, T: 4 }, hint],
        },
      ],
    });
    const lines: string[] = [];
    const r = await runExperiment(exp, 'two-stage.yaml', { runsRoot: scratch, log: (l) => lines.push(l) });
    assert.deepEqual(
      r.stages.map((s) => [s.name, s.losses]),
      [
        ['hint', ['regressor']],
        ['main', ['ce', 'kd', 'regressor']],
      ],
    );
    assert.ok(existsSync(join(r.runDir, 'model.ckpt')));
    assert.ok(existsSync(join(r.runDir, 'stages', '2-main', 'metrics.jsonl')));
    const results = JSON.parse(readFileSync(join(r.runDir, 'results.json'), 'utf8'));
    // results.json reports the saved student: re-evaluating model.ckpt on the test split gives it.
    const d = buildData(exp.data, exp.seed);
    const saved = buildModel('lightnn', { inputShape: d.shape, numClasses: d.numClasses });
    loadModelWeights(join(r.runDir, 'model.ckpt'), saved);
    assert.equal(results.testTop1, (await evaluate(saved, d.test)).top1);
    assert.equal(results.testTop1, r.testTop1);
    assert.ok(lines.some((l) => l.startsWith('stage main:')));
    // init.ckpt holds the student before training: the weights the same seed builds, not the trained
    // ones, and a lottery rewind to 'init' takes it (and refuses model.ckpt).
    const init = join(r.runDir, 'init.ckpt');
    assert.equal(loadCheckpoint(init).header.meta['kind'], 'init');
    seedEverything(exp.seed);
    const fresh = buildModel('lightnn', { inputShape: d.shape, numClasses: d.numClasses });
    unseed();
    const initial = buildModel('lightnn', { inputShape: d.shape, numClasses: d.numClasses });
    loadModelWeights(init, initial);
    for (const [i, w] of initial.weights.entries()) {
      assert.deepEqual(w.read().dataSync(), fresh.weights[i]!.read().dataSync(), w.name);
    }
    assert.notDeepEqual(initial.weights[0]!.read().dataSync(), saved.weights[0]!.read().dataSync());
    assert.equal(readRewindPoint(initial, init, 'init').length, initial.weights.length);
    assert.throws(
      () => readRewindPoint(initial, join(r.runDir, 'model.ckpt'), 'init'),
      /final weights of run/,
    );
    // Teacher-student agreement: the share of test images where both name the same class.
    const { predicted } = await evaluate(saved, d.test, { predictions: true });
    const t = await evaluate(teacher, d.test, { predictions: true });
    const same = predicted!.filter((p, i) => p === t.predicted![i]).length;
    assert.ok(Math.abs(results.teacherAgreement - (100 * same) / predicted!.length) < 1e-9);
  });

  it('a term with the label of an earlier stage reuses its parts (same variables)', () => {
    const student = buildModel('lightnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
    const teacher = buildModel('deepnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 2 });
    const terms = parseTerms([hint], 'test');
    const first = buildOfflineTask({ student, teacher, terms, data: info });
    const second = buildOfflineTask({
      student,
      teacher,
      terms,
      data: info,
      existingParts: first.partsByTerm,
    });
    const fresh = buildOfflineTask({ student, teacher, terms, data: info });
    assert.equal(second.partsByTerm['regressor']!['regressor'], first.partsByTerm['regressor']!['regressor']);
    assert.notEqual(
      fresh.partsByTerm['regressor']!['regressor'],
      first.partsByTerm['regressor']!['regressor'],
    );
  });

  it('a method with parts and no data info is refused with the term named', () => {
    const student = buildModel('lightnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
    const teacher = buildModel('deepnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 2 });
    assert.throws(
      () => buildOfflineTask({ student, teacher, terms: parseTerms([hint], 'test') }),
      /loss regressor builds trainable parts/,
    );
  });

  it('methods compose across families: ResNet-8 teacher, ShuffleNetV2 student, CE + KD + CRD + VID + AT', async () => {
    await tf.setBackend('native');
    const teacher = buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10, seed: 4 });
    const ckpt = join(scratch, 'resnet8.ckpt');
    saveModelWeights(ckpt, teacher, { model: { name: 'resnet8' } });
    const stages = {
      student: { stage1: 'layer1.3.shuffle', stage2: 'layer2.7.shuffle', stage3: 'layer3.3.shuffle' },
      teacher: { stage1: 'layer1.0.relu_out', stage2: 'layer2.0.relu_out', stage3: 'layer3.0.relu_out' },
    };
    const exp = experimentSchema.parse({
      name: 'cross-family',
      seed: 3,
      model: { name: 'shufflenetv2', options: { netSize: 0.5 } },
      teacher: { model: { name: 'resnet8' }, checkpoint: ckpt },
      // A validation part: CRD's memory bank still spans every item of the split (its indices).
      data: { ...data, trainLimit: 128, testLimit: 64, valFraction: 0.25 },
      optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9 },
      losses: [
        { name: 'ce', weight: 1 },
        { name: 'kd', weight: 1 },
        {
          name: 'crd',
          weight: 0.8,
          nceK: 32,
          taps: { student: { feat: 'avgpool' }, teacher: { feat: 'avgpool' } },
        },
        { name: 'vid', weight: 1, taps: stages },
        { name: 'at', weight: 1000, taps: stages },
      ],
      epochs: 1,
    });
    const r = await runExperiment(exp, 'cross-family.yaml', { runsRoot: scratch, log: () => {} });
    const terms = Object.keys(r.epochs[0]!.terms);
    assert.deepEqual(terms.sort(), ['at', 'ce', 'crd', 'kd', 'vid']);
    for (const v of Object.values(r.epochs[0]!.terms)) assert.ok(Number.isFinite(v), 'finite loss terms');
  });
});

describe('training output', () => {
  it('metrics.csv beside metrics.jsonl, best.ckpt by validation top-1, the split named, an onEpoch hook', async () => {
    await tf.setBackend('native');
    const exp = experimentSchema.parse({
      name: 'outputs',
      seed: 4,
      model: { name: 'mlp' },
      data: { ...data, trainLimit: 320, valFraction: 0.2 },
      optimizer: { name: 'sgd', lr: 0.5 },
      epochs: 4,
    });
    const lines: string[] = [];
    const hooked: [number, string][] = [];
    const r = await runExperiment(exp, 'outputs.yaml', {
      runsRoot: scratch,
      log: (l) => lines.push(l),
      onEpoch: (rec, stage) => hooked.push([rec.epoch, stage]),
    });
    const dir = join(scratch, 'outputs');
    // results.json: the test confusion matrix, whose diagonal is the test top-1.
    const conf = r.confusion!;
    const total = conf.flat().reduce((a, b) => a + b, 0);
    assert.equal(total, 200);
    assert.ok(Math.abs((100 * conf.reduce((a, row, i) => a + row[i]!, 0)) / total - r.testTop1) < 1e-9);
    assert.equal(r.classNames?.[0], 'T-shirt/top');
    // The hook saw every epoch, with the stage's name.
    assert.deepEqual(
      hooked,
      [1, 2, 3, 4].map((e) => [e, r.stages[0]!.name]),
    );
    // The epoch line says which split it measured.
    const epochLines = lines.filter((l) => /^epoch \d\/4 /.test(l));
    assert.equal(epochLines.length, 4);
    assert.ok(
      epochLines.every((l) => / val top-1 \d+\.\d\d%/.test(l)),
      epochLines.join('\n'),
    );
    // The CSV holds the same numbers as the JSONL, one row per epoch, terms as their own columns.
    const jsonl = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const [head, ...rows] = readFileSync(join(dir, 'metrics.csv'), 'utf8').trim().split('\n');
    const cols = head!.split(',');
    for (const c of [
      'epoch',
      'lr',
      'trainLoss',
      'term:ce',
      'trainTop1',
      'valLoss',
      'valTop1',
      'valSplit',
      'imgPerSec',
    ])
      assert.ok(cols.includes(c), `metrics.csv lacks column ${c}: ${head}`);
    assert.equal(rows.length, 4);
    for (const [i, row] of rows.entries()) {
      const cell = (c: string) => row.split(',')[cols.indexOf(c)];
      assert.equal(Number(cell('valTop1')), jsonl[i].valTop1);
      assert.equal(Number(cell('term:ce')), jsonl[i].terms.ce);
      assert.equal(cell('valSplit'), 'validation');
    }
    // best.ckpt holds the epoch with the highest validation top-1 (the first of ties).
    const tops = r.epochs.map((e) => e.valTop1!);
    const bestEpoch = tops.indexOf(Math.max(...tops)) + 1;
    const { header } = loadCheckpoint(join(dir, 'best.ckpt'));
    assert.equal(
      header.meta['epoch'],
      bestEpoch,
      `best.ckpt is epoch ${header.meta.epoch}, the best is ${bestEpoch} (${tops})`,
    );
    const model = buildModel('mlp', { inputShape: [28, 28, 1], numClasses: 10, seed: 0 });
    loadModelWeights(join(dir, 'best.ckpt'), model);
    const d = buildData(exp.data, exp.seed);
    assert.equal((await evaluate(model, d.val)).top1, Math.max(...tops));
  });

  it('without a validation split the line says test, and no best checkpoint is chosen on the test split', async () => {
    await tf.setBackend('native');
    const exp = experimentSchema.parse({
      name: 'outputs-test',
      seed: 4,
      model: { name: 'mlp' },
      data,
      optimizer: { name: 'sgd', lr: 0.5 },
      epochs: 2,
    });
    const lines: string[] = [];
    const r = await runExperiment(exp, 'outputs-test.yaml', { runsRoot: scratch, log: (l) => lines.push(l) });
    assert.ok(
      lines.filter((l) => /^epoch /.test(l)).every((l) => / test top-1 /.test(l)),
      lines.join('\n'),
    );
    assert.ok(r.epochs.every((e) => e.valSplit === 'test'));
    assert.equal(existsSync(join(scratch, 'outputs-test', 'best.ckpt')), false);
    assert.equal(existsSync(join(scratch, 'outputs-test', 'metrics.csv')), true);
  });
});
