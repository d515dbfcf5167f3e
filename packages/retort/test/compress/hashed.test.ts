/**
 * HashedNets (compress/hashed.ts, hashed-model.ts, stages/hash.ts): the hash is XXH32 and spreads
 * positions evenly with balanced signs; the layers compute x V + b with V[i, j] = s(i, j) w[h(i, j)]
 * (forward against a JS-built V, bucket gradient against finite differences and the closed form, on
 * cpu and native); the bucket start is the least-squares projection (a kernel already in the hashed
 * subspace, or one with no collisions, leaves the model unchanged; the residual is orthogonal to the
 * subspace); a hashed model saves and loads; the counts; a model that cannot be rebuilt leaks no
 * tensor; and the stage end to end in runPipeline.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { rebuildModel } from '../../src/compress/graph.js';
import {
  HashedConv2D,
  HashedDense,
  hashTables,
  projectBuckets,
  virtualKernel,
  xxh32,
} from '../../src/compress/hashed.js';
import { hashedLayers, hashModel, unhashModel } from '../../src/compress/hashed-model.js';
import type { MaskSet } from '../../src/compress/prune/magnitude.js';
import { hash, hashSchema } from '../../src/compress/stages/hash.js';
import { planStages } from '../../src/compress/stages/registry.js';
import type { StageContext } from '../../src/compress/stages/types.js';
import { dataSchema } from '../../src/config/experiment.js';
import { buildData } from '../../src/data/build.js';
import { loadBundle } from '../../src/export/rtz.js';
import { loadTfjs } from '../../src/export/tfjs.js';
import { buildModel } from '../../src/models/index.js';
import { pipelineSchema, runPipeline } from '../../src/run/compress.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-hashed-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const predict = (m: tfl.LayersModel, x: tf.Tensor) =>
  tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync() as Float32Array);

/** A dense net [N, 20] -> 30 (tanh) -> 5, weights from `seed`. */
function denseNet(seed: number): tfl.LayersModel {
  const init = (s: number) => tfl.initializers.randomNormal({ stddev: 0.3, seed: s });
  const x = tfl.input({ shape: [20] });
  const h = tfl.layers
    .dense({
      units: 30,
      activation: 'tanh',
      name: 'fc1',
      kernelInitializer: init(seed),
      biasInitializer: init(seed + 1),
    })
    .apply(x) as tfl.SymbolicTensor;
  const y = tfl.layers
    .dense({ units: 5, name: 'out', kernelInitializer: init(seed + 2) })
    .apply(h) as tfl.SymbolicTensor;
  return tfl.model({ inputs: x, outputs: y, name: 'dense-net' });
}

describe('the hash', () => {
  it('is XXH32 of the index as 4 little-endian bytes', () => {
    // From libxxhash 0.8.1: python3 -c "import ctypes,struct; l=ctypes.CDLL('libxxhash.so.0');
    // l.XXH32.restype=ctypes.c_uint32; print(hex(l.XXH32(struct.pack('<I', n), 4, seed)))"
    const ref: [number, number, number][] = [
      [0, 0, 0x08d6d969],
      [0, 1, 0xf3bb7693],
      [1, 0, 0x77f498c8],
      [42, 12345, 0xb851b898],
      [0x9e3779b9, 7, 0x28098542],
      [0xffffffff, 0xffffffff, 0x20e3fb57],
    ];
    for (const [seed, n, want] of ref) assert.equal(xxh32(seed, n), want, `XXH32(seed ${seed}, ${n})`);
  });

  it('is deterministic, spreads positions evenly over the buckets and balances the signs', () => {
    const n = 100_000;
    const k = 1000;
    const a = hashTables(n, k, 7);
    const b = hashTables(n, k, 7);
    assert.deepEqual(a.index, b.index);
    assert.deepEqual(a.sign, b.sign);
    const other = hashTables(n, k, 8);
    assert.ok(
      other.index.some((v, i) => v !== a.index[i]),
      'another seed, other buckets',
    );
    const count = new Float64Array(k);
    for (const v of a.index) count[v]! += 1;
    // Chi-square with k - 1 degrees of freedom: mean 999, sd 44.7; 6 sd is far beyond chance.
    const e = n / k;
    const chi2 = count.reduce((s, c) => s + (c - e) ** 2 / e, 0);
    assert.ok(chi2 < k - 1 + 6 * Math.sqrt(2 * (k - 1)), `chi2 ${chi2.toFixed(1)} over ${k} buckets`);
    assert.ok(Math.min(...count) > 0, 'no empty bucket at 100 positions per bucket');
    const signSum = a.sign.reduce((s, v) => s + v, 0);
    assert.ok(Math.abs(signSum) < 5 * Math.sqrt(n), `sum of signs ${signSum}`);
    // The sign is independent of the bucket: signs within even and odd buckets are balanced too.
    const evenSum = a.sign.reduce((s, v, p) => s + (a.index[p]! % 2 === 0 ? v : 0), 0);
    assert.ok(Math.abs(evenSum) < 5 * Math.sqrt(n / 2), `sum of signs in even buckets ${evenSum}`);
  });
});

for (const backend of ['cpu', 'native']) {
  describe(`hashed layers on ${backend}`, () => {
    it('HashedDense is x V + b with V[i, j] = s(i, j) w[h(i, j)], then the activation', async () => {
      await tf.setBackend(backend);
      const [nIn, out, k, seed] = [7, 5, 9, 123];
      const layer = new HashedDense({ units: out, buckets: k, seed, activation: 'relu', name: 'hd' });
      const x = tf.randomNormal([4, nIn], 0, 1, 'float32', 1);
      layer.apply(x); // builds it
      const w = Float32Array.from({ length: k }, (_, i) => Math.sin(i + 1));
      const bias = Float32Array.from({ length: out }, (_, j) => 0.1 * j - 0.2);
      layer.setWeights([tf.tensor1d(w), tf.tensor1d(bias)]);
      assert.deepEqual(
        layer.weights.map((v) => v.originalName.split('/').pop()),
        ['buckets', 'bias'],
        'the buckets and the bias are its only weights',
      );
      // V from the definition, one (i, j) at a time.
      const v = new Float32Array(nIn * out);
      for (let i = 0; i < nIn; i++)
        for (let j = 0; j < out; j++) {
          const p = i * out + j;
          const h = xxh32(seed, p) % k;
          const s = (xxh32((seed ^ 0x9e3779b9) >>> 0, p) & 1) === 0 ? 1 : -1;
          v[p] = s * w[h]!;
        }
      assert.deepEqual(layer.virtual().dataSync(), v);
      const want = tf.tidy(() =>
        tf.relu(tf.add(tf.matMul(x, tf.tensor2d(v, [nIn, out])), tf.tensor1d(bias))),
      );
      const got = layer.apply(x) as tf.Tensor;
      assert.ok(maxAbsDiff(got.dataSync(), want.dataSync()) < 1e-6);
      // A rank-3 input is hashed along its last axis, as Dense does.
      const x3 = tf.reshape(x, [2, 2, nIn]);
      assert.deepEqual((layer.apply(x3) as tf.Tensor).shape, [2, 2, out]);
      tf.dispose([x, x3, want, got]);
    });

    it('HashedConv2D is conv2d with the virtual [kh, kw, Cin, Cout] kernel', async () => {
      await tf.setBackend(backend);
      const layer = new HashedConv2D({
        filters: 4,
        kernelSize: [3, 3],
        strides: [2, 2],
        padding: 'same',
        buckets: 20,
        seed: 5,
        activation: 'linear',
        name: 'hc',
      });
      const x = tf.randomNormal([2, 9, 9, 3], 0, 1, 'float32', 2);
      const got = layer.apply(x) as tf.Tensor;
      const [w, b] = layer.getWeights();
      const t = hashTables(3 * 3 * 3 * 4, 20, 5);
      const v = virtualKernel(w!.dataSync() as Float32Array, t);
      const want = tf.tidy(() =>
        tf.add(tf.conv2d(x as tf.Tensor4D, tf.tensor4d(v, [3, 3, 3, 4]), 2, 'same'), b!),
      );
      assert.deepEqual(got.shape, [2, 5, 5, 4]);
      assert.deepEqual(layer.computeOutputShape([null, 9, 9, 3]), [null, 5, 5, 4]);
      assert.ok(maxAbsDiff(got.dataSync(), want.dataSync()) < 1e-5);
      tf.dispose([x, got, want]);
    });

    it('the bucket gradient is sum of s dL/dV over the bucket and matches finite differences', async () => {
      await tf.setBackend(backend);
      const [nIn, out, k, seed] = [6, 4, 5, 77];
      const layer = new HashedDense({ units: out, buckets: k, seed, activation: 'tanh', name: 'hg' });
      const x = tf.randomNormal([3, nIn], 0, 1, 'float32', 3);
      const r = tf.randomNormal([3, out], 0, 1, 'float32', 4);
      layer.apply(x);
      const bucketVar = layer.trainableWeights[0]!.read() as tf.Variable;
      const loss = () => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, r)) as tf.Scalar;
      const { grads } = tf.variableGrads(loss, [bucketVar]);
      const g = grads[bucketVar.name]!.dataSync() as Float32Array;
      // Closed form: dL/dV of the same network with V a free weight, summed per bucket with signs.
      const t = hashTables(nIn * out, k, seed);
      const vTensor = tf.tensor2d(virtualKernel(bucketVar.dataSync() as Float32Array, t), [nIn, out]);
      const bias = layer.getWeights()[1]!;
      const dv = tf
        .grad((v: tf.Tensor) => tf.sum(tf.mul(tf.tanh(tf.add(tf.matMul(x, v as tf.Tensor2D), bias)), r)))(
          vTensor,
        )
        .dataSync();
      const closed = new Float64Array(k);
      for (let p = 0; p < nIn * out; p++) closed[t.index[p]!]! += t.sign[p]! * dv[p]!;
      assert.ok(maxAbsDiff(g, closed) < 1e-5, `autograd ${g} vs closed form ${closed}`);
      // Central differences in float32: step 1e-2 keeps the rounding error near 1e-5 and the
      // truncation error (O(eps^2) of a tanh network) below 1e-3.
      const w0 = Float32Array.from(bucketVar.dataSync());
      const eps = 1e-2;
      for (let j = 0; j < k; j++) {
        const at = (d: number) => {
          const w = Float32Array.from(w0);
          w[j]! += d;
          bucketVar.assign(tf.tensor1d(w));
          return tf.tidy(() => loss().dataSync()[0]!);
        };
        const fd = (at(eps) - at(-eps)) / (2 * eps);
        assert.ok(
          Math.abs(fd - g[j]!) < 2e-3 * Math.max(1, Math.abs(g[j]!)),
          `bucket ${j}: ${fd} vs ${g[j]}`,
        );
      }
      bucketVar.assign(tf.tensor1d(w0));
      tf.dispose([x, r, vTensor, ...Object.values(grads)]);
    });
  });
}

describe('hashModel and unhashModel', () => {
  it('starts from the projection: a kernel in the hashed subspace is kept exactly, any residual is orthogonal to it', async () => {
    await tf.setBackend('native');
    const model = denseNet(11);
    const x = tf.randomNormal([8, 20], 0, 1, 'float32', 5);
    // Put fc1's kernel into the hashed subspace of factor 4: then hashing changes nothing.
    const fc1 = model.getLayer('fc1');
    const seed = xxh32(0, model.layers.indexOf(fc1));
    const t = hashTables(600, 150, seed);
    const w0 = Float32Array.from({ length: 150 }, (_, k) => Math.cos(k));
    fc1.setWeights([tf.tensor2d(virtualKernel(w0, t), [20, 30]), fc1.getWeights()[1]!]);
    const r = hashModel(model, { factor: 4, minWeights: 1 });
    assert.deepEqual(
      r.layers.map((l) => [l.layer, l.weights, l.buckets]),
      [
        ['fc1', 600, 150],
        ['out', 150, 38],
      ],
    );
    assert.ok(r.layers[0]!.relError < 1e-6, `fc1 error ${r.layers[0]!.relError}`);
    const got = r.model.getLayer('fc1').getWeights()[0]!.dataSync() as Float32Array;
    for (let k = 0; k < 150; k++)
      if (t.index.includes(k)) assert.ok(Math.abs(got[k]! - w0[k]!) < 1e-6, `bucket ${k}`);
    // 'out' was not in its subspace: V is the projection, so W - V is orthogonal to every bucket
    // direction (sum over bucket k of s (W - V) = 0) and the error matches ||W - V|| / ||W||.
    const out = model.getLayer('out');
    const w = out.getWeights()[0]!.dataSync() as Float32Array;
    const hashedOut = hashedLayers(r.model).find((l) => l.name === 'out')!;
    const v = hashedOut.virtual().dataSync();
    const to = hashTables(150, 38, hashedOut.seed);
    const dot = new Float64Array(38);
    for (let p = 0; p < 150; p++) dot[to.index[p]!]! += to.sign[p]! * (w[p]! - v[p]!);
    assert.ok(Math.max(...dot.map(Math.abs)) < 1e-5, 'the residual is orthogonal to the hashed subspace');
    const err = Math.sqrt(
      w.reduce((s, wi, p) => s + (wi - v[p]!) ** 2, 0) / w.reduce((s, wi) => s + wi * wi, 0),
    );
    assert.ok(Math.abs(err - r.layers[1]!.relError) < 1e-6);
    assert.ok(err > 0.3, `factor 4 of a random kernel loses much (${err.toFixed(3)})`);
    // With only fc1 hashed (out below minWeights), the model computes the same function.
    const fc1Only = hashModel(model, { factor: 4, minWeights: 200 });
    assert.deepEqual(fc1Only.skipped, [{ layer: 'out', reason: '150 kernel weights < minWeights 200' }]);
    assert.ok(maxAbsDiff(predict(fc1Only.model, x), predict(model, x)) < 1e-5);
    x.dispose();
  });

  it('factor 1 with no collisions leaves the model unchanged', async () => {
    await tf.setBackend('native');
    const x = tfl.input({ shape: [2] });
    const y = tfl.layers.dense({ units: 2, activation: 'relu', name: 'd' }).apply(x) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: x, outputs: y });
    // A seed whose 4 positions land in 4 distinct buckets (probability 4!/4^4 per seed).
    let seed = 0;
    while (new Set(hashTables(4, 4, xxh32(seed, 1)).index).size < 4) seed++;
    const r = hashModel(model, { factor: 1, minWeights: 1, seed });
    assert.equal(r.layers[0]!.emptyBuckets, 0);
    assert.equal(r.layers[0]!.relError, 0);
    const input = tf.tensor2d([1, -2, 0.5, 3, -1, -1], [3, 2]);
    assert.deepEqual(predict(r.model, input), predict(model, input));
    assert.deepEqual(
      unhashModel(r.model).getLayer('d').getWeights()[0]!.dataSync(),
      model.getLayer('d').getWeights()[0]!.dataSync(),
    );
    input.dispose();
  });

  it('stores ceil(n / factor) buckets per hashed kernel, keeps the rest, and unhashes to the same function', async () => {
    await tf.setBackend('native');
    const model = buildModel('lightnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
    const convs = model.layers.filter((l) => l.getClassName() === 'Conv2D').map((l) => l.name);
    const dense = model.layers.filter((l) => l.getClassName() === 'Dense').map((l) => l.name);
    const r = hashModel(model, { factor: 8, layers: 'all', skipEdges: true, minWeights: 100 });
    assert.deepEqual(
      r.skipped.map((s) => s.layer),
      [convs[0], dense.at(-1)],
      'skipEdges keeps the stem conv and the classifier',
    );
    for (const l of r.layers) assert.equal(l.buckets, Math.ceil(l.weights / 8), l.layer);
    const kernelsBefore = r.layers.reduce((a, l) => a + l.weights, 0);
    const bucketsAfter = r.layers.reduce((a, l) => a + l.buckets, 0);
    assert.equal(model.countParams() - r.model.countParams(), kernelsBefore - bucketsAfter);
    const kinds = hashedLayers(r.model).map((l) => l.getClassName());
    assert.ok(kinds.includes('RetortHashedConv2D') && kinds.includes('RetortHashedDense'), kinds.join());
    const back = unhashModel(r.model);
    assert.deepEqual(
      back.layers.map((l) => l.getClassName()),
      model.layers.map((l) => l.getClassName()),
    );
    assert.equal(back.countParams(), model.countParams());
    const x = tf.randomNormal([4, 28, 28, 1], 0, 1, 'float32', 6);
    assert.ok(maxAbsDiff(predict(back, x), predict(r.model, x)) < 1e-4);
    x.dispose();
    assert.throws(
      () => hashModel(model, { factor: 8, minWeights: 1e9 }),
      /hash: model '.*' has no Dense layer to hash \(kept whole: .*kernel weights < minWeights 1000000000/,
    );
  });

  it('hashModel and unhashModel leave no tensor behind when the model cannot be rebuilt', async () => {
    await tf.setBackend('native');
    // fc1 (hashed, or to hash) and then a layer called twice, which rebuildModel refuses after
    // having built fc1's replacement.
    const net = (first: 'hashed' | 'dense') => {
      const x = tfl.input({ shape: [20] });
      const fc1 =
        first === 'hashed'
          ? new HashedDense({ units: 30, buckets: 75, seed: 3, activation: 'tanh', name: 'fc1' })
          : tfl.layers.dense({ units: 30, activation: 'tanh', name: 'fc1' });
      const shared = tfl.layers.dense({ units: 30, name: 'shared' });
      const h = shared.apply(shared.apply(fc1.apply(x) as tfl.SymbolicTensor)) as tfl.SymbolicTensor;
      return tfl.model({ inputs: x, outputs: h });
    };
    for (const [what, model, f] of [
      ['unhashModel', net('hashed'), (m: tfl.LayersModel) => unhashModel(m)],
      ['hashModel', net('dense'), (m: tfl.LayersModel) => hashModel(m, { factor: 8, minWeights: 100 }).model],
    ] as const) {
      const before = tf.memory().numTensors;
      assert.throws(() => f(model), /layer 'shared' is called 2 times \(shared layers are not supported\)/);
      assert.equal(tf.memory().numTensors, before, `${what}: tensors after the failure`);
      model.dispose();
    }
  });

  it('a hashed layer whose first apply fails after its build leaves no tensor behind in a rebuild', async () => {
    await tf.setBackend('native');
    // Built (buckets, bias and the two hash tables made), then the apply throws: tfjs never counts
    // the layer, so its dispose refuses it and the rebuild frees its tensors one by one.
    class FailsAfterBuild extends HashedDense {
      override computeOutputShape(): tfl.Shape {
        throw new Error('output shape refused');
      }
    }
    const x = tfl.input({ shape: [20] });
    const model = tfl.model({
      inputs: x,
      outputs: tfl.layers.dense({ units: 30, name: 'fc1' }).apply(x) as tfl.SymbolicTensor,
    });
    const layer = new FailsAfterBuild({ units: 30, buckets: 75, seed: 3, name: 'fc1h' });
    const before = tf.memory().numTensors;
    assert.throws(
      () => rebuildModel(model, (l) => (l.name === 'fc1' ? { kind: 'replace', layers: [layer] } : undefined)),
      /output shape refused/,
    );
    assert.ok(layer.built, 'the failure came after the build');
    assert.equal(tf.memory().numTensors, before, 'tensors after the failed rebuild');
    model.dispose();
  });

  it('a hashed model saves and loads as the registered classes, storing only the buckets', async () => {
    await tf.setBackend('native');
    const model = buildModel('lightnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 2 });
    const hashed = hashModel(model, { factor: 4, layers: 'all', minWeights: 100 }).model;
    let artifacts: tf.io.ModelArtifacts | undefined;
    await hashed.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const stored = artifacts!.weightSpecs!.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
    assert.equal(stored, hashed.countParams());
    assert.ok(artifacts!.weightSpecs!.some((s) => s.name.endsWith('/buckets')));
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
    assert.deepEqual(
      loaded.layers.map((l) => l.getClassName()),
      hashed.layers.map((l) => l.getClassName()),
    );
    const x = tf.randomNormal([2, 28, 28, 1], 0, 1, 'float32', 7);
    assert.deepEqual(predict(loaded, x), predict(hashed, x));
    x.dispose();
  });
});

describe('the hash stage', () => {
  it('refuses to follow unstructured pruning or lowrank', () => {
    assert.deepEqual(
      planStages({ hash: { factor: 8 } }, 'p').map((p) => p.config),
      [{ factor: 8, layers: 'dense', skipEdges: false, minWeights: 1000, seed: 0 }],
    );
    assert.throws(
      () => planStages({ prune: { kind: 'unstructured', sparsity: 0.5 }, hash: { factor: 8 } }, 'p'),
      /compress 'p': hash after unstructured pruning/,
    );
    assert.throws(
      () => planStages({ lowrank: { rank: { energy: 0.9 } }, hash: { factor: 8 } }, 'p'),
      /compress 'p': hash after lowrank/,
    );
    assert.throws(() => planStages({ hash: { factor: 1 } }, 'p'), /hash\.factor: /);
    assert.throws(() => planStages({ hash: { factor: 8, bits: 4 } }, 'p'), /hash \(stage hash\)/);
  });

  it('hands on plain layers whose fine-tuned kernels still hold one bucket value (up to sign) per position', async () => {
    await tf.setBackend('native');
    const model = denseNet(21);
    const x = tf.randomNormal([16, 20], 0, 1, 'float32', 8);
    const logs: string[] = [];
    const ctx: StageContext = {
      model,
      masks: null,
      epochs: 1,
      log: (l) => logs.push(l),
      async finetune(m) {
        const opt = tf.train.sgd(0.5);
        const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
        for (let s = 0; s < 3; s++)
          opt.minimize(
            () => tf.mean(tf.square(m.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar,
            false,
            vars,
          );
        opt.dispose();
      },
      calibrate: () => Promise.reject(new Error('not needed')),
    };
    const out = (await hash.run(ctx, hashSchema.parse({ factor: 4, minWeights: 100 }))).model!;
    await assert.rejects(
      hash.run({ ...ctx, masks: {} as MaskSet }, hashSchema.parse({ factor: 4 })),
      /hash: an earlier stage left sparsity masks/,
    );
    assert.deepEqual(logs.length, 1);
    assert.match(
      logs[0]!,
      /^hash: 2 dense layers, 750 -> 188 stored kernel weights \(4\.0x\); start error fc1 0\.\d+, out 0\.\d+$/,
    );
    for (const name of ['fc1', 'out']) {
      const layer = out.getLayer(name);
      assert.equal(layer.getClassName(), 'Dense');
      const w = layer.getWeights()[0]!.dataSync() as Float32Array;
      const t = hashTables(w.length, Math.ceil(w.length / 4), xxh32(0, out.layers.indexOf(layer)));
      const p = projectBuckets(w, t, Math.ceil(w.length / 4));
      assert.ok(maxAbsDiff(virtualKernel(p.buckets, t), w) < 1e-6, `${name} lies in its hashed subspace`);
      const w0 = model.getLayer(name).getWeights()[0]!.dataSync() as Float32Array;
      const start = virtualKernel(projectBuckets(w0, t, Math.ceil(w.length / 4)).buckets, t);
      assert.ok(maxAbsDiff(start, w) > 1e-3, `${name}'s buckets were trained`);
    }
    x.dispose();
  });

  it('runs in runPipeline: fine-tunes the buckets, hands on plain Dense kernels that the ONNX fp32 check passes; the .rtz stores the buckets', async () => {
    await tf.setBackend('native');
    const data = buildData(
      dataSchema.parse({ dataset: 'fashion-mnist', batchSize: 32, trainLimit: 64, testLimit: 64 }),
      0,
    );
    const make = () =>
      buildModel('mlp', { inputShape: data.shape, numClasses: data.numClasses, hidden: '64,32', seed: 4 });
    const model = make();
    const cfg = pipelineSchema.parse({
      name: 'h1',
      student: { run: 'unused' },
      finetune: { epochs: 1 },
      hash: { factor: 8 },
      export: ['onnx', 'tfjs', 'rtz'],
    });
    const logs: string[] = [];
    const reports = await runPipeline(cfg, { model, teacher: make(), data }, join(scratch, 'h1'), (l) =>
      logs.push(l),
    );
    assert.deepEqual(
      reports.map((r) => r.stage),
      ['baseline', 'hash', 'export-onnx'],
    );
    // The bundle holds the 6,528 buckets, not the 52,224 weights of the dense kernels (209 KB as fp32).
    const dir = join(scratch, 'h1', 'export');
    const rtzBytes = statSync(join(dir, 'model.rtz')).size;
    assert.ok(rtzBytes < 50_000, `model.rtz ${rtzBytes} B`);
    // It loads as the plain model handed to the exporters: the tfjs export's kernels, bit for bit.
    const back = await loadBundle(join(dir, 'model.rtz'));
    const dense = await loadTfjs(join(dir, 'tfjs'));
    assert.equal(hashedLayers(back).length, 0);
    assert.deepEqual(
      back.weights.map((w) => w.originalName),
      dense.weights.map((w) => w.originalName),
    );
    const a = back.getWeights();
    const b = dense.getWeights();
    for (const [i, t] of a.entries())
      assert.deepEqual(
        new Uint32Array(t.dataSync().slice().buffer),
        new Uint32Array(b[i]!.dataSync().slice().buffer),
        back.weights[i]!.originalName,
      );
    back.dispose();
    dense.dispose();
    // fc1 784 x 64 and fc2 64 x 32 are hashed; the 32 x 10 classifier is below minWeights.
    const line = logs.find((l) => l.startsWith('hash: '));
    assert.match(
      line ?? logs.join('\n'),
      /^hash: 2 dense layers, 52,224 -> 6,528 stored kernel weights \(8\.0x\)/,
    );
    assert.match(line!, /kept whole: classifier \(320 kernel weights < minWeights 1000\)/);
    // An iid kernel keeps K / n of its energy under the projection: start error sqrt(1 - 1/8).
    for (const m of line!.matchAll(/(fc\d) (0\.\d+)/g))
      assert.ok(Math.abs(Number(m[2]) - Math.sqrt(1 - 1 / 8)) < 0.02, `${m[1]} start error ${m[2]}`);
    const hashRow = reports[1]!;
    assert.equal(hashRow.params, reports[0]!.params, 'the model handed on holds the full virtual kernels');
    const onnx = reports[2]!.onnx!;
    assert.ok(onnx.maxAbsDiff <= cfg.check.fp32MaxDiff, `onnx max |diff| ${onnx.maxAbsDiff}`);
    assert.equal(onnx.agreement, 100);
  });
});
