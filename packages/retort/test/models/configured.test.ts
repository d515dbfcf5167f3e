/**
 * A student from the user's own module (`model.module`): trained with a feature loss tapped by its
 * layer names, loaded back from its run folder, exported with a sidecar saying how to feed it; and
 * the refusals of modules that do not build a fitting model.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../src/config/experiment.js';
import { loadExperiment } from '../../src/config/load.js';
import { FASHION_MNIST_CLASSES } from '../../src/data/fashion-mnist.js';
import { buildConfiguredModel } from '../../src/models/configured.js';
import { buildModel } from '../../src/models/index.js';
import { runExperiment } from '../../src/run/experiment.js';
import { loadRun } from '../../src/run/load.js';
import { saveModelWeights } from '../../src/train/checkpoint.js';
import { evaluate } from '../../src/train/trainer.js';

const here = dirname(fileURLToPath(import.meta.url));
const MODULE = join(here, '..', 'fixtures', 'user-model', 'my-model.mjs');
const bin = join(here, '..', '..', 'bin', 'retort.js');
const scratch = mkdtempSync(join(tmpdir(), 'retort-user-model-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('a student from your own module', () => {
  it('trains with FitNet on its own layer names, loads back, exports with a sidecar', async () => {
    await tf.setBackend('native');
    const teacher = buildModel('deepnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 3 });
    const ckpt = join(scratch, 'teacher.ckpt');
    saveModelWeights(ckpt, teacher, { model: { name: 'deepnn' } });
    // A config file beside the scratch folder: the module path is relative to it.
    const cfg = join(scratch, 'student.yaml');
    writeFileSync(
      cfg,
      [
        'name: mine',
        `model: { module: ${JSON.stringify(MODULE)}, export: build, options: { width: 8 } }`,
        'teacher: { model: { name: deepnn }, checkpoint: ./teacher.ckpt }',
        'data: { dataset: fashion-mnist, batchSize: 64, trainLimit: 256, testLimit: 128 }',
        'losses:',
        '  - { name: ce, weight: 1 }',
        '  - { name: fitnet, weight: 10, taps: { student: { hint: block2_relu }, teacher: { hint: features.conv4 } } }',
        'epochs: 1',
        '',
      ].join('\n'),
    );
    const exp = loadExperiment(cfg);
    const lines: string[] = [];
    const res = await runExperiment(exp, cfg, { runsRoot: join(scratch, 'runs'), log: (l) => lines.push(l) });
    assert.equal(res.model, 'my-model.mjs#build');
    assert.ok(Number.isFinite(res.epochs[0]!.terms['fitnet']!), lines.join('\n'));
    const { model, data } = await loadRun(res.runDir);
    assert.equal(model.getLayer('block2').getWeights()[0]!.shape.join('x'), '3x3x8x16');
    assert.equal((await evaluate(model, data.test)).top1, res.testTop1);

    // `retort export` writes a sidecar beside the ONNX file: input preprocessing and class names.
    const out = join(scratch, 'mine.onnx');
    const r = spawnSync(process.execPath, [bin, 'export', res.runDir, '--format', 'onnx', '--out', out], {
      encoding: 'utf8',
      env: { ...process.env, RETORT_QUIET: '1' },
    });
    assert.equal(r.status, 0, r.stderr);
    const side = JSON.parse(readFileSync(`${out}.json`, 'utf8'));
    assert.equal(side.model, 'mine.onnx');
    assert.deepEqual(side.input.shape, [28, 28, 1]);
    assert.equal(side.input.layout, 'nhwc');
    assert.deepEqual(side.input.mean, data.mean);
    assert.deepEqual(side.input.std, data.std);
    assert.deepEqual(side.output.classes, [...FASHION_MNIST_CLASSES]);
    const t = spawnSync(
      process.execPath,
      [bin, 'export', res.runDir, '--format', 'tfjs', '--out', join(scratch, 'tfjs')],
      {
        encoding: 'utf8',
        env: { ...process.env, RETORT_QUIET: '1' },
      },
    );
    assert.equal(t.status, 0, t.stderr);
    assert.ok(existsSync(join(scratch, 'tfjs', 'retort.json')));
    assert.equal(
      JSON.parse(readFileSync(join(scratch, 'tfjs', 'retort.json'), 'utf8')).output.numClasses,
      10,
    );
  });

  it('refuses a missing export, a non-function, a model that does not fit the data', async () => {
    await tf.setBackend('native');
    const opts = { inputShape: [28, 28, 1] as [number, number, number], numClasses: 10 };
    const cfg = (exp: string) => ({ module: MODULE, export: exp, options: {} });
    await assert.rejects(
      buildConfiguredModel(cfg('nope'), opts),
      /exports no function 'nope' \(functions it exports: build, wrongClasses\)/,
    );
    await assert.rejects(
      buildConfiguredModel(cfg('notAFunction'), opts),
      /exports no function 'notAFunction'/,
    );
    await assert.rejects(
      buildConfiguredModel(cfg('wrongClasses'), opts),
      /must return one output of logits \[N, 10\], got \[N, 3\]/,
    );
    await assert.rejects(
      buildConfiguredModel({ module: join(scratch, 'missing.mjs'), options: {} }, opts),
      /model\.module .*missing\.mjs: cannot import it/,
    );
    const both = experimentSchema.safeParse({ name: 'x', model: { name: 'resnet8', module: MODULE } });
    assert.ok(!both.success && /exactly one of name/.test(JSON.stringify(both.error.issues)));
  });
});
