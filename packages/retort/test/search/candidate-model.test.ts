/**
 * A search space's candidate as an experiment's model (`model: { space, candidate }`, what
 * search/best.yaml holds): built exactly as the space builds it, tapped with the space's taps (byot
 * finds its heads there), trained and loaded back as a run; a bad gene is one error naming
 * model.candidate and the gene, before any run folder exists.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../src/config/experiment.js';
import { byotLayers, byotSchema } from '../../src/distill/schemes/byot.js';
import { buildConfiguredModel, configuredModelTaps, modelLabel } from '../../src/models/configured.js';
import { runExperiment } from '../../src/run/experiment.js';
import { loadRun } from '../../src/run/load.js';
import '../../src/search/candidate-model.js';
import { searchSpace } from '../../src/search/space-config.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-candidate-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
before(async () => {
  await tf.setBackend('native');
});

const CANDIDATE = { blocks: [1, 2, 1], widthMult: 0.75 };
const shape = { inputShape: [28, 28, 1] as [number, number, number], numClasses: 10 };

describe('a search candidate as the model', () => {
  it('builds what the space builds (layer names, parameters) and taps what the space taps', async () => {
    const cfg = { space: 'resnet', candidate: CANDIDATE, options: {} };
    const m = await buildConfiguredModel(cfg, shape);
    const space = searchSpace({ name: 'resnet' });
    const ref = space.build(CANDIDATE, shape);
    assert.deepEqual(
      m.layers.map((l) => l.name),
      ref.layers.map((l) => l.name),
    );
    assert.equal(m.countParams(), ref.countParams());
    assert.equal(modelLabel(cfg), 'resnet-b1.2.1-w0.75');
    assert.deepEqual(configuredModelTaps(cfg), space.taps(CANDIDATE));
    // byot puts its heads on the stages the space's taps name (between the stem and the last one).
    const { heads } = byotLayers(m, cfg, byotSchema.parse({}));
    assert.ok(heads.length >= 1);
    for (const h of heads) assert.ok(m.getLayer(h));
    m.dispose();
    ref.dispose();
  });

  it('the schema: exactly one of name, module or space; candidate with space only', () => {
    const ok = experimentSchema.safeParse({ name: 'x', model: { space: 'resnet', candidate: CANDIDATE } });
    assert.ok(ok.success);
    const issues = (model: unknown) => {
      const r = experimentSchema.safeParse({ name: 'x', model });
      return r.success ? '' : JSON.stringify(r.error.issues);
    };
    assert.match(issues({ name: 'resnet8', space: 'resnet', candidate: CANDIDATE }), /got name and space/);
    assert.match(issues({ space: 'resnet' }), /required with model\.space/);
    assert.match(issues({ name: 'resnet8', candidate: CANDIDATE }), /applies to model\.space only/);
    assert.match(
      issues({ space: 'resnet', candidate: CANDIDATE, options: { widthMult: 1 } }),
      /takes no options/,
    );
  });

  it('trains (tiny) and loads back from its run folder', async () => {
    const exp = experimentSchema.parse({
      name: 'cand',
      model: { space: 'resnet', candidate: CANDIDATE },
      data: { dataset: 'fashion-mnist', batchSize: 64, trainLimit: 128, testLimit: 64 },
      epochs: 1,
    });
    const res = await runExperiment(exp, 'cand.yaml', { runsRoot: join(scratch, 'runs'), log: () => {} });
    assert.equal(res.model, 'resnet-b1.2.1-w0.75');
    const ref = searchSpace({ name: 'resnet' }).build(CANDIDATE, shape);
    assert.equal(res.params, ref.countParams());
    ref.dispose();
    const back = await loadRun(res.runDir);
    assert.equal(back.model.countParams(), res.params);
    back.model.dispose();
  });

  it('a bad gene is one error naming model.candidate and the gene, before the run folder exists', async () => {
    const bad = (candidate: unknown, space = 'resnet') =>
      runExperiment(
        experimentSchema.parse({
          name: 'bad',
          model: { space, candidate },
          data: { dataset: 'fashion-mnist', trainLimit: 64, testLimit: 64 },
          epochs: 1,
        }),
        'bad.yaml',
        { runsRoot: join(scratch, 'runs'), log: () => {} },
      );
    await assert.rejects(
      bad({ blocks: [1, 0, 1], widthMult: 0.75 }),
      /^RetortError: bad\.yaml: model\.candidate \(space resnet\): blocks\[1\]: Too small: expected number to be >=1$/,
    );
    await assert.rejects(
      bad({ blocks: [1, 1, 1], width: 1 }),
      /model\.candidate \(space resnet\): .*'width'/,
    );
    await assert.rejects(
      bad(CANDIDATE, 'resnett'),
      /bad\.yaml: model\.space: unknown search space 'resnett' \(known: mobilenetv2, plain-cnn, resnet\)/,
    );
    assert.ok(!existsSync(join(scratch, 'runs', 'bad')));
  });
});
