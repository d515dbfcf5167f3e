/**
 * A tfjs layers model folder as a teacher: loaded from disk through a file handler that stays inside
 * the model's folder, its logits equal to the model's own, its layers tapped by name, its input
 * adapted from the student's batches; and the refusals (weights outside the folder,
 * broken files).
 */
import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { exportTfjs, WEIGHTS_FILE } from '../../src/export/tfjs.js';
import { buildModel } from '../../src/models/index.js';
import { readLayersArtifacts, tfjsTeacher } from '../../src/teachers/tfjs.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-tfjs-teacher-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const data = { shape: [28, 28, 1] as [number, number, number], mean: [0.3], std: [0.35], numClasses: 10 };

describe('tfjs teacher', () => {
  it("gives the saved model's logits and taps its layers by name", async () => {
    await tf.setBackend('native');
    const model = buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10, seed: 5 });
    const dir = join(scratch, 'resnet8');
    await exportTfjs(model, dir);
    const teacher = await tfjsTeacher({ path: join(dir, 'model.json') }, data);
    assert.equal(teacher.numClasses, 10);
    assert.equal(teacher.params, model.countParams());
    const x = tf.randomNormal([3, 28, 28, 1], 0, 1, 'float32', 7);
    const view = teacher.tap(['layer2.0.relu_out']);
    assert.deepEqual(view.shapes, [[14, 14, 32]]);
    const r = (await view.run(x)) as { logits: tf.Tensor2D; features: tf.Tensor[] };
    const want = model.predict(x) as tf.Tensor;
    assert.ok(tf.max(tf.abs(tf.sub(r.logits, want))).dataSync()[0]! <= 1e-5);
    assert.deepEqual(r.features[0]!.shape, [3, 14, 14, 32]);
    tf.dispose([x, r.logits, ...r.features, want]);

    // Its own normalization: the student's batch is renormalized before it reaches the model.
    const own = await tfjsTeacher({ path: join(dir, 'model.json'), mean: [0.5], std: [0.25] }, data);
    const z = tf.zeros([1, 28, 28, 1]);
    const a = (await own.tap([]).run(z)) as { logits: tf.Tensor2D };
    // A zero student pixel is 0.3 in [0, 1]; the model sees (0.3 - 0.5) / 0.25 = -0.8.
    const b = model.predict(tf.fill([1, 28, 28, 1], -0.8)) as tf.Tensor;
    assert.ok(tf.max(tf.abs(tf.sub(a.logits, b))).dataSync()[0]! <= 1e-5);
    assert.notEqual(own.identity(), teacher.identity());
    model.dispose();
  });

  it('reads weights only inside the model folder; refuses broken files', async () => {
    await tf.setBackend('native');
    const model = buildModel('lightnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
    const dir = join(scratch, 'light');
    await exportTfjs(model, dir);
    const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    const write = (name: string, edit: (j: typeof json) => void) => {
      const j = structuredClone(json);
      edit(j);
      writeFileSync(join(dir, name), JSON.stringify(j));
      return join(dir, name);
    };
    // Weights moved up one folder and referenced with '../': refused, though the file exists.
    renameSync(join(dir, WEIGHTS_FILE), join(scratch, WEIGHTS_FILE));
    const climbing = write('up.json', (j) => {
      j.weightsManifest[0].paths = [`../${WEIGHTS_FILE}`];
    });
    assert.throws(
      () => readLayersArtifacts(climbing),
      /weight path \.\.\/group1-shard1of1\.bin leads outside the model's folder/,
    );
    const absolute = write('abs.json', (j) => {
      j.weightsManifest[0].paths = [join(scratch, WEIGHTS_FILE)];
    });
    assert.throws(() => readLayersArtifacts(absolute), /is not relative to the model's folder/);
    // A link inside the folder that points out of it is refused too.
    symlinkSync(join(scratch, WEIGHTS_FILE), join(dir, 'link.bin'));
    const linked = write('link.json', (j) => {
      j.weightsManifest[0].paths = ['link.bin'];
    });
    assert.throws(
      () => readLayersArtifacts(linked),
      /weight path link\.bin leads outside the model's folder/,
    );
    // Back in place, it loads.
    mkdirSync(join(dir, 'shards'));
    renameSync(join(scratch, WEIGHTS_FILE), join(dir, 'shards', WEIGHTS_FILE));
    const nested = write('nested.json', (j) => {
      j.weightsManifest[0].paths = [`shards/${WEIGHTS_FILE}`];
    });
    assert.equal((await tfjsTeacher({ path: nested }, data)).numClasses, 10);
    const graph = write('graph.json', (j) => {
      j.format = 'graph-model';
    });
    await assert.rejects(tfjsTeacher({ path: graph }, data), /tfjs model .*graph\.json: /);
    writeFileSync(join(dir, 'bad.json'), '{"modelTopology": ');
    assert.throws(() => readLayersArtifacts(join(dir, 'bad.json')), /bad\.json: not JSON/);
    const missing = write('missing.json', (j) => {
      j.weightsManifest[0].paths = ['nope.bin'];
    });
    assert.throws(() => readLayersArtifacts(missing), /weight file nope\.bin not found/);
    model.dispose();
  });
});
