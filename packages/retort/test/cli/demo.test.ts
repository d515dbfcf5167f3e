import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import { shippedTeacher } from '../../src/cli/commands/demo.js';
import { loadExperiment } from '../../src/config/load.js';
import { loadRun } from '../../src/run/load.js';
import { evaluate } from '../../src/train/trainer.js';

const repo = new URL('../../../../', import.meta.url).pathname;
const shipped = join(repo, 'models/fashion-mnist-resnet20');

describe('the teacher shipped for the demo', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'retort-demo-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('matches its recorded SHA-256, and its record names the committed config it was trained by', () => {
    const t = shippedTeacher(shipped);
    assert.equal(t.model, 'resnet20');
    assert.match(t.sha256, /^[0-9a-f]{64}$/);
    // The recorded config is the committed baseline, and the run's own config.json is that file
    // as parsed (same recipe, seed and epochs).
    const fromFile = loadExperiment(join(repo, t.config));
    const asRun = JSON.parse(readFileSync(join(shipped, 'config.json'), 'utf8'));
    assert.deepEqual(asRun, JSON.parse(JSON.stringify(fromFile)));
    assert.equal(fromFile.seed, t.seed);
  });

  it('scores its recorded test accuracy on the Fashion-MNIST test split', async () => {
    const t = shippedTeacher(shipped);
    const { model, data } = await loadRun(shipped, 'test');
    assert.equal(model.countParams(), t.params);
    const r = await evaluate(model, data.test);
    assert.equal(Number(r.top1.toFixed(2)), t.testTop1, `top-1 ${r.top1} vs recorded ${t.testTop1}`);
  });

  it('a changed or missing weights file is refused by name, before any training', () => {
    const dir = join(tmp, 'teacher');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    copyFileSync(join(shipped, 'teacher.json'), join(dir, 'teacher.json'));
    assert.throws(
      () => shippedTeacher(dir),
      /no shipped teacher in .*teacher \(expected teacher.json and model.ckpt/,
    );
    const bytes = readFileSync(join(shipped, 'model.ckpt'));
    const last = bytes.length - 1;
    bytes.writeUInt8(bytes.readUInt8(last) ^ 1, last);
    writeFileSync(join(dir, 'model.ckpt'), bytes);
    assert.throws(() => shippedTeacher(dir), /model\.ckpt has SHA-256 [0-9a-f]{64}, .*teacher\.json records/);
  });
});
