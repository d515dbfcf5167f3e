/**
 * Student search spaces: seeded draws and mutations stay in range and repeat for a seed, a mutation
 * changes exactly one gene, keys are stable and one-to-one, known points build the zoo's models
 * (same parameter count and layer names), one small candidate per space runs and matches its ONNX
 * export in onnxruntime, and bad space sections fail naming the key.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import * as ort from 'onnxruntime-node';
import { z } from 'zod';
import { exportOnnx } from '../../src/export/onnx.js';
import { buildModel } from '../../src/models/index.js';
import { type Candidate, type SearchSpace, searchSpace, spaceSchema } from '../../src/search/space-config.js';
import { spaceByName, spaceNames } from '../../src/search/spaces/registry.js';
import { Rng } from '../../src/util/rng.js';
import { randomizeBn } from '../export/onnx-check.js';

const CTX = { inputShape: [28, 28, 1], numClasses: 10 } as const;

/** Gene values of a candidate, flattened to "path=value" strings (lists of lists included). */
function genes(c: unknown, path = ''): string[] {
  if (Array.isArray(c)) return c.flatMap((v, i) => genes(v, `${path}[${i}]`));
  if (typeof c === 'object' && c !== null)
    return Object.entries(c).flatMap(([k, v]) => genes(v, path ? `${path}.${k}` : k));
  return [`${path}=${String(c)}`];
}

/** How many genes differ; a stage that changed depth counts as one. */
function changedGenes(a: Candidate, b: Candidate): number {
  const ga = new Set(genes(a));
  const gb = new Set(genes(b));
  const diff = [...ga].filter((g) => !gb.has(g)).length + [...gb].filter((g) => !ga.has(g)).length;
  return Math.ceil(diff / 2);
}

/** Walks: `n` samples, and a mutation chain of `n` steps from the first. */
function walk(space: SearchSpace, seed: number, n: number): { samples: Candidate[]; chain: Candidate[] } {
  const rng = new Rng(seed);
  const samples = Array.from({ length: n }, () => space.sample(rng));
  const chain = [samples[0]!];
  for (let i = 1; i < n; i++) chain.push(space.mutate(chain[i - 1]!, rng));
  return { samples, chain };
}

async function onnxError(model: tfl.LayersModel, x: tf.Tensor): Promise<number> {
  const session = await ort.InferenceSession.create(exportOnnx(model));
  const want = (model.predict(x) as tf.Tensor).dataSync();
  const res = await session.run({
    input: new ort.Tensor('float32', x.dataSync() as Float32Array, x.shape),
  });
  await session.release();
  const got = res['output']!.data as Float32Array;
  assert.equal(got.length, want.length);
  let err = 0;
  for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!));
  return err;
}

describe('search spaces', () => {
  it('the registry lists the spaces and refuses unknown names', () => {
    assert.deepEqual(spaceNames(), ['mobilenetv2', 'plain-cnn', 'resnet']);
    assert.throws(
      () => spaceByName('vit'),
      /unknown search space 'vit' \(known: mobilenetv2, plain-cnn, resnet\)/,
    );
  });

  for (const name of ['resnet', 'mobilenetv2', 'plain-cnn']) {
    it(`${name}: seeded samples and one-gene mutations stay in range and repeat for a seed`, () => {
      const space = searchSpace({ name });
      const { samples, chain } = walk(space, 11, 400);
      for (const c of [...samples, ...chain])
        assert.ok(space.contains(c), `${space.key(c)} outside the space`);
      for (let i = 1; i < chain.length; i++) {
        assert.notEqual(space.key(chain[i]!), space.key(chain[i - 1]!), `step ${i} did not change`);
        assert.equal(changedGenes(chain[i - 1]!, chain[i]!), 1, `step ${i} changed more than one gene`);
      }
      const again = walk(space, 11, 400);
      assert.deepEqual(again.samples.map(space.key), samples.map(space.key));
      assert.deepEqual(again.chain.map(space.key), chain.map(space.key));
      assert.notDeepEqual(walk(space, 12, 20).samples.map(space.key), samples.slice(0, 20).map(space.key));
      // Every gene takes several values: none is stuck.
      const seen = new Map<string, Set<string>>();
      for (const g of [...samples, ...chain].flatMap((c) => genes(c))) {
        const [path = '', value = ''] = g.split('=');
        seen.set(path, (seen.get(path) ?? new Set()).add(value));
      }
      for (const g of genes(samples[0])) assert.ok(seen.get(g.split('=')[0]!)!.size > 1, g);
    });

    it(`${name}: keys are stable and one-to-one`, () => {
      const space = searchSpace({ name });
      const { samples, chain } = walk(space, 5, 300);
      const byKey = new Map<string, string>();
      for (const c of [...samples, ...chain]) {
        const key = space.key(c);
        assert.match(key, new RegExp(`^${name}-[a-z0-9._-]+$`));
        assert.ok(key.length <= 60, key);
        assert.equal(space.key(JSON.parse(JSON.stringify(c)) as Candidate), key);
        const json = JSON.stringify(c);
        assert.equal(byKey.get(key) ?? json, json, `two candidates share key ${key}`);
        byKey.set(key, json);
      }
      const jsons = new Set(byKey.values());
      assert.equal(jsons.size, byKey.size);
    });
  }

  it('keys look as documented', () => {
    const r = searchSpace({ name: 'resnet' });
    assert.equal(r.key({ blocks: [1, 2, 1], widthMult: 0.75 }), 'resnet-b1.2.1-w0.75');
    const m = searchSpace({ name: 'mobilenetv2' });
    const half = {
      widthMult: 0.5,
      expansion: [6, 6, 6, 6, 6, 6],
      kernel: [3, 3, 3, 3, 3, 3],
      depth: [2, 3, 4, 3, 3, 1],
    };
    assert.equal(m.key(half), 'mobilenetv2-w0.5-e6-k3-d2.3.4.3.3.1');
    assert.equal(
      m.key({ ...half, kernel: [3, 5, 3, 3, 3, 3] }),
      'mobilenetv2-w0.5-e6-k3.5.3.3.3.3-d2.3.4.3.3.1',
    );
    const p = searchSpace({ name: 'plain-cnn' });
    assert.equal(p.key({ channels: [[16, 24], [32], [64, 64]] }), 'plain-cnn-c16.24_32_64.64');
  });

  it('small spaces: every point is drawn, and a mutation always finds another one', () => {
    const cases: [unknown, number][] = [
      [{ name: 'resnet', blocks: { min: 1, max: 2 }, widthMult: [0.5, 1] }, 16],
      [
        { name: 'mobilenetv2', widthMult: [0.5], expansion: [6], kernel: [3, 5], depth: { min: 1, max: 1 } },
        64,
      ],
      [{ name: 'plain-cnn', stages: 2, layers: { min: 1, max: 2 }, channels: [8, 16] }, 36],
    ];
    for (const [cfg, size] of cases) {
      const space = searchSpace(cfg);
      assert.equal(space.size, size);
      const { samples, chain } = walk(space, 3, 600);
      assert.equal(new Set(samples.map(space.key)).size, size);
      assert.equal(new Set(chain.map(space.key)).size, size);
    }
    const one = searchSpace({ name: 'resnet', blocks: { min: 2, max: 2 }, widthMult: [1] });
    assert.equal(one.size, 1);
    const c = one.sample(new Rng(1));
    assert.deepEqual(one.mutate(c, new Rng(1)), c);
    const two = searchSpace({ name: 'plain-cnn', stages: 1, layers: { min: 1, max: 1 }, channels: [8, 16] });
    assert.deepEqual(two.mutate({ channels: [[8]] }, new Rng(9)), { channels: [[16]] });
  });

  it('default sizes', () => {
    assert.equal(searchSpace({ name: 'resnet' }).size, 4 ** 3 * 5);
    assert.equal(searchSpace({ name: 'mobilenetv2' }).size, 3 * 3 ** 6 * 2 ** 6 * 4 ** 6);
    assert.equal(searchSpace({ name: 'plain-cnn' }).size, (6 + 6 ** 2 + 6 ** 3) ** 3);
  });

  it("known points build the zoo's models: ResNet-8, ResNet-20 and mobile_half", () => {
    const r = searchSpace({ name: 'resnet' });
    const m = searchSpace({ name: 'mobilenetv2' });
    const points: [SearchSpace, Candidate, string][] = [
      [r, { blocks: [1, 1, 1], widthMult: 1 }, 'resnet8'],
      [r, { blocks: [3, 3, 3], widthMult: 1 }, 'resnet20'],
      [
        m,
        {
          widthMult: 0.5,
          expansion: [6, 6, 6, 6, 6, 6],
          kernel: [3, 3, 3, 3, 3, 3],
          depth: [2, 3, 4, 3, 3, 1],
        },
        'mobilenetv2',
      ],
    ];
    for (const [space, c, zooName] of points) {
      assert.ok(space.contains(c), `${zooName} is not a point of the default ${space.name} space`);
      const got = space.build(c, CTX);
      const want = buildModel(zooName, { ...CTX });
      assert.equal(got.countParams(), want.countParams(), zooName);
      assert.deepEqual(
        got.layers.map((l) => l.name),
        want.layers.map((l) => l.name),
      );
      got.dispose();
      want.dispose();
    }
  });

  it('parameter counts of other points follow the widths and blocks', () => {
    const r = searchSpace({ name: 'resnet' });
    // widthMult 0.75: widths 12, 12, 24, 48; blocks 1, 2, 1.
    const conv = (cin: number, cout: number, k = 3) => k * k * cin * cout;
    const bn = (c: number) => 4 * c;
    const block = (cin: number, c: number, down: boolean) =>
      conv(cin, c) + bn(c) + conv(c, c) + bn(c) + (down ? conv(cin, c, 1) + bn(c) : 0);
    const want =
      conv(1, 12) +
      bn(12) +
      block(12, 12, false) +
      block(12, 24, true) +
      block(24, 24, false) +
      block(24, 48, true) +
      48 * 10 +
      10;
    const m = r.build({ blocks: [1, 2, 1], widthMult: 0.75 }, CTX);
    assert.equal(m.countParams(), want);
    m.dispose();
    // Plain CNN [[8, 16], [24]] on one channel: convs, BNs and the fc.
    const p = searchSpace({ name: 'plain-cnn' }).build({ channels: [[8, 16], [24]] }, CTX);
    assert.equal(
      p.countParams(),
      conv(1, 8) + bn(8) + conv(8, 16) + bn(16) + conv(16, 24) + bn(24) + 24 * 10 + 10,
    );
    p.dispose();
  });

  it('a candidate of each space runs on [2, 28, 28, 1], matches its ONNX export and has its taps', async () => {
    await tf.setBackend('native');
    const cases: [string, Candidate][] = [
      ['resnet', { blocks: [1, 2, 1], widthMult: 0.75 }],
      [
        'mobilenetv2',
        {
          widthMult: 0.5,
          expansion: [3, 4, 3, 6, 3, 4],
          kernel: [5, 3, 5, 3, 5, 5],
          depth: [1, 2, 1, 1, 2, 1],
        },
      ],
      ['plain-cnn', { channels: [[8, 16], [24], [32, 8]] }],
    ];
    const x = tf.randomNormal([2, 28, 28, 1], 0, 1, 'float32', 7);
    for (const [name, c] of cases) {
      const space = searchSpace({ name });
      assert.ok(space.contains(c), name);
      const model = space.build(c, { ...CTX, seed: 3 });
      assert.equal(model.name, space.key(c));
      randomizeBn(model);
      assert.deepEqual((model.predict(x) as tf.Tensor).shape, [2, 10]);
      const err = await onnxError(model, x);
      assert.ok(err <= 1e-4, `${name}: max abs difference ${err}`);
      const taps = space.taps(c);
      assert.ok(taps !== undefined && taps.stages.length >= 3, name);
      for (const t of taps.stages) {
        model.getLayer(t.output);
        model.getLayer(t.preact);
      }
      for (const b of taps.bnBeforeRelu) assert.equal(model.getLayer(b).getClassName(), 'BatchNormalization');
      model.dispose();
    }
    x.dispose();
  });

  it('bad ranges, unknown keys and unknown spaces fail naming the key', () => {
    const bad: [unknown, RegExp][] = [
      [{ name: 'resnet', blocks: { min: 3, max: 2 } }, /space: blocks\.max: min must be <= max/],
      [{ name: 'resnet', blocks: { min: 0, max: 2 } }, /space: blocks\.min: /],
      [
        { name: 'resnet', blocks: { min: 1, max: 2, step: 1 } },
        /blocks\.step: unknown key of space 'resnet'/,
      ],
      [
        { name: 'resnet', depth: 3 },
        /space: depth: unknown key of space 'resnet' \(valid keys: name, blocks, widthMult\)/,
      ],
      [{ name: 'resnet', widthMult: [] }, /space: widthMult: needs at least one choice/],
      [{ name: 'resnet', widthMult: [1, 1] }, /space: widthMult: choices must be distinct/],
      [{ name: 'resnet', widthMult: [1, -0.5] }, /space: widthMult\[1\]: /],
      [{ name: 'mobilenetv2', kernel: [3, 7] }, /space: kernel\[1\]: kernel must be 3 or 5/],
      [
        { name: 'mobilenetv2', widthMult: [0.05] },
        /widthMult\[0\]: widthMult must have int\(16 \* widthMult\) >= 1/,
      ],
      [{ name: 'plain-cnn', stages: 0 }, /space: stages: /],
      [{ name: 'plain-cnn', channels: [8, 2.5] }, /space: channels\[1\]: /],
      [{ name: 'vit' }, /space: name: unknown search space 'vit' \(known: mobilenetv2, plain-cnn, resnet\)/],
      [{ blocks: { min: 1, max: 2 } }, /space: name: /],
    ];
    for (const [cfg, re] of bad) assert.throws(() => searchSpace(cfg), re, JSON.stringify(cfg));
    // Nested in a larger config, the path starts at the section.
    const outer = z.strictObject({ space: spaceSchema });
    const r = outer.safeParse({ space: { name: 'resnet', blocks: { min: 4, max: 1 } } });
    assert.ok(!r.success);
    assert.deepEqual(r.error.issues[0]!.path, ['space', 'blocks', 'max']);
    // The parsed section carries the defaults and parses again to itself.
    const parsed = spaceSchema.parse({ name: 'resnet', widthMult: [1] });
    assert.deepEqual(parsed, { name: 'resnet', blocks: { min: 1, max: 4 }, widthMult: [1] });
    assert.deepEqual(spaceSchema.parse(parsed), parsed);
  });

  it('candidates from outside are checked: shape, then range', () => {
    const r = searchSpace({ name: 'resnet' }, 'search.yaml: space');
    assert.deepEqual(r.candidate({ blocks: [1, 1, 1], widthMult: 1 }), { blocks: [1, 1, 1], widthMult: 1 });
    assert.throws(
      () => r.candidate({ blocks: [1, 1], widthMult: 1 }),
      /search\.yaml: space 'resnet': candidate: blocks/,
    );
    assert.throws(() => r.candidate({ blocks: [1, 1, 1], widthMult: 1, extra: 1 }), /unknown key 'extra'/);
    assert.throws(
      () => r.candidate({ blocks: [5, 1, 1], widthMult: 1 }),
      /candidate resnet-b5\.1\.1-w1 is outside the space: blocks\[0\] = 5 is not one of 1, 2, 3, 4/,
    );
    assert.throws(
      () => r.mutate({ blocks: [1, 1, 1], widthMult: 2 }, new Rng(1)),
      /widthMult = 2 is not one of/,
    );
    const p = searchSpace({ name: 'plain-cnn', stages: 2 });
    assert.throws(() => p.candidate({ channels: [[8]] }), /channels has 1 stages, the space 2/);
    assert.throws(
      () => p.candidate({ channels: [[8], [8, 8, 8, 8]] }),
      /channels\[1\] has 4 layers, not 1\.\.3/,
    );
  });

  it('the builders take the new options and keep their checks', () => {
    const z1 = buildModel('plaincnn', { ...CTX, stages: '8,16/24' });
    const s1 = searchSpace({ name: 'plain-cnn' }).build({ channels: [[8, 16], [24]] }, CTX);
    assert.equal(z1.countParams(), s1.countParams());
    const m = buildModel('mobilenetv2', {
      ...CTX,
      kernel: 5,
      depths: '1,1,1,1,1,1',
      expansion: [1, 2, 3, 4, 5, 6],
    });
    assert.deepEqual(m.getLayer('blocks.1.0.conv.3').getWeights()[0]!.shape, [5, 5, 8, 1]);
    assert.deepEqual(m.getLayer('blocks.6.0.conv.0').getWeights()[0]!.shape.slice(2), [80, 480]);
    assert.throws(() => m.getLayer('blocks.1.1.conv.0'));
    assert.throws(() => buildModel('mobilenetv2', { kernel: 4 }), /kernel must be an odd positive integer/);
    assert.throws(() => buildModel('mobilenetv2', { depths: [1, 2] }), /depths must be .*6 of them/);
    assert.throws(() => buildModel('plaincnn', { stages: [[8], []] }), /stages must be one or more lists/);
    for (const x of [z1, s1, m]) x.dispose();
  });
});
