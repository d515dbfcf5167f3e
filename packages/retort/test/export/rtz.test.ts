/**
 * The .rtz bundle: compressed zoo models (k-means shared, magnitude-pruned, int8-snapped) written
 * at a fraction of the fp32 tfjs weights file and loaded back bit for bit (the same logits); every
 * encoding exact on the awkward values (-0, NaN payloads, constant tensors); and damaged or crafted
 * files refused with one RetortError that names the file (and the tensor, where one is at fault).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { clusterModel } from '../../src/compress/cluster-model.js';
import { MaskSet, prunableKernels } from '../../src/compress/prune/magnitude.js';
import { fakeQuantKernel } from '../../src/compress/quantize/qat.js';
import {
  assembleBundle,
  encodeBundle,
  loadBundle,
  parseBundle,
  type RtzManifest,
  writeBundle,
} from '../../src/export/rtz.js';
import { decodeTensor, encodeTensor, type RtzEncoding } from '../../src/export/rtz-codec.js';
import { exportTfjs, WEIGHTS_FILE } from '../../src/export/tfjs.js';
import { buildModel } from '../../src/models/index.js';
import { RetortError } from '../../src/util/errors.js';
import { perturb } from '../models/weights.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-rtz-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** ResNet-8 with every weight (BN statistics too) off its initial value, as a trained model's are. */
function resnet8(): tfl.LayersModel {
  const model = buildModel('resnet8', { inputShape: [32, 32, 3], numClasses: 10, seed: 5 });
  perturb(model);
  return model;
}

/** Size of the fp32 tfjs weights file (group1-shard1of1.bin) exportTfjs writes for `model`. */
async function fp32Bin(model: tfl.LayersModel, name: string): Promise<number> {
  const dir = join(scratch, `${name}-tfjs`);
  await exportTfjs(model, dir);
  return statSync(join(dir, WEIGHTS_FILE)).size;
}

function logits(model: tfl.LayersModel): number[] {
  return tf.tidy(() =>
    Array.from((model.predict(tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 11)) as tf.Tensor).dataSync()),
  );
}

const bitsOf = (m: tfl.LayersModel) =>
  m.getWeights().map((w) => Array.from(new Uint32Array(w.dataSync().buffer)));

/** Writes and loads the bundle of `model`; checks bit-identical weights and logits; returns sizes. */
async function roundTrip(model: tfl.LayersModel, name: string) {
  const path = join(scratch, `${name}.rtz`);
  const { bytes, tensors } = await writeBundle(model, path, { overwrite: true });
  assert.equal(statSync(path).size, bytes);
  const back = await loadBundle(path);
  assert.deepEqual(bitsOf(back), bitsOf(model));
  assert.deepEqual(logits(back), logits(model));
  // Saved weights go by their layer's name (a variable's own name gets a suffix per model built).
  const kernels = new Set(prunableKernels(model).map((k) => `${k.layer}/kernel`));
  const kernelEncodings = new Set(tensors.filter((t) => kernels.has(t.name)).map((t) => t.encoding));
  return { ratio: bytes / (await fp32Bin(model, name)), kernelEncodings };
}

describe('rtz bundle: compressed zoo models', () => {
  for (const backend of ['native', 'cpu']) {
    it(`${backend}: k-means 16 clusters: bundle <= 0.2x the fp32 tfjs weights file (.bin), same logits`, async (t) => {
      await tf.setBackend(backend);
      const model = resnet8();
      clusterModel(model, { clusters: 16 });
      const { ratio, kernelEncodings } = await roundTrip(model, `cluster-${backend}`);
      t.diagnostic(`bundle / fp32 .bin = ${ratio.toFixed(4)}`);
      assert.deepEqual([...kernelEncodings], ['codebook']);
      assert.ok(ratio <= 0.2, `ratio ${ratio}`);
    });

    it(`${backend}: 80% global magnitude sparsity: bundle <= 0.35x the fp32 tfjs weights file (.bin), same logits`, async (t) => {
      await tf.setBackend(backend);
      const model = resnet8();
      MaskSet.prune(model, 0.8, 'global');
      const { ratio, kernelEncodings } = await roundTrip(model, `sparse-${backend}`);
      t.diagnostic(`bundle / fp32 .bin = ${ratio.toFixed(4)}`);
      assert.deepEqual([...kernelEncodings], ['sparse']);
      assert.ok(ratio <= 0.35, `ratio ${ratio}`);
    });

    it(`${backend}: per-channel int8-snapped kernels (what weight QAT writes) are stored int8, same logits`, async (t) => {
      await tf.setBackend(backend);
      const model = resnet8();
      for (const { kernel } of prunableKernels(model)) {
        const q = fakeQuantKernel(kernel, 127);
        kernel.assign(q);
        q.dispose();
      }
      const { ratio, kernelEncodings } = await roundTrip(model, `int8-${backend}`);
      t.diagnostic(`bundle / fp32 .bin = ${ratio.toFixed(4)}`);
      assert.deepEqual([...kernelEncodings], ['int8']);
      assert.ok(ratio <= 0.3, `ratio ${ratio}`);
    });
  }

  it('an uncompressed model stays fp32 and a ShuffleNetV2 (custom layer class) loads back', async () => {
    await tf.setBackend('native');
    const model = buildModel('shufflenetv2', {
      netSize: 0.5,
      inputShape: [32, 32, 3],
      numClasses: 10,
      seed: 3,
    });
    perturb(model);
    const { bytes, tensors } = await encodeBundle(model);
    assert.ok(tensors.every((x) => x.encoding === 'fp32'));
    const back = await loadBundle(bytes);
    assert.deepEqual(bitsOf(back), bitsOf(model));
    assert.deepEqual(logits(back), logits(model));
  });
});

describe('rtz encodings', () => {
  const f32 = (bits: number[]) => new Float32Array(Uint32Array.from(bits).buffer);
  const NEG0 = 0x80000000;
  const NAN = 0x7fc01234; // a NaN with a payload a float64 round trip could lose
  const exact = (values: Float32Array, shape: number[], allowed?: RtzEncoding[]) => {
    const { encoding, bytes } = encodeTensor(values, shape, allowed);
    const back = decodeTensor(encoding, bytes, shape);
    assert.deepEqual(Array.from(back), Array.from(new Uint32Array(values.buffer)));
    return { encoding, size: bytes.length };
  };

  it('codebook: k values take ceil(log2 k) bits, -0 and NaN payloads kept; 257 values do not fit', () => {
    const rng = tf.randomUniform([4096], -1, 1, 'float32', 3).dataSync() as Float32Array;
    for (const [k, bits] of [
      [1, 0],
      [2, 1],
      [3, 2],
      [16, 4],
      [17, 5],
      [256, 8],
    ] as const) {
      const book = rng.slice(0, k);
      const values = Float32Array.from({ length: 4096 }, (_, i) => book[(i * 7) % k]!);
      const { encoding, size } = exact(values, [64, 64]);
      assert.equal(encoding, 'codebook');
      assert.equal(size, 2 + 4 * k + (4096 * bits) / 8);
    }
    assert.equal(exact(f32([0, NEG0, NAN, 0, NEG0, NAN, 0, 0, 0]), [9], ['codebook']).encoding, 'codebook');
    const many = Float32Array.from({ length: 4096 }, (_, i) => rng[i % 257]!);
    assert.equal(exact(many, [4096], ['codebook']).encoding, 'fp32');
  });

  it('sparse: mask + zero signs + values; with a codebook when the non-zeros share values', () => {
    const values = tf.randomNormal([1000], 0, 1, 'float32', 4).dataSync() as Float32Array;
    for (let i = 0; i < values.length; i++) if (i % 10 !== 0) values[i] = values[i]! < 0 ? -0 : 0;
    const { encoding, size } = exact(values, [1000]);
    assert.equal(encoding, 'sparse');
    assert.equal(size, 1 + 125 + Math.ceil(900 / 8) + 4 * 100);
    const shared = values.map((v, i) => (v === 0 ? v : i % 20 === 0 ? 0.5 : -0.25));
    assert.equal(exact(shared, [1000], ['sparse', 'sparse-codebook']).encoding, 'sparse-codebook');
    // Without negative zeros the sign map is left out.
    assert.equal(exact(values.map(Math.abs), [1000], ['sparse']).size, 1 + 125 + 4 * 100);
  });

  it('int8: exact per-channel q * scale at qmax 127 and 63, -0 and all-zero channels; off-grid values stay fp32', () => {
    const w = tf.randomNormal([3, 3, 8, 16], 0, 0.2, 'float32', 9);
    for (const qmax of [127, 63]) {
      const q = fakeQuantKernel(w, qmax);
      const v = q.dataSync().slice() as Float32Array;
      v[5] = -0;
      for (let i = 3; i < v.length; i += 16) v[i] = 0;
      const { encoding, size } = exact(v, q.shape);
      assert.equal(encoding, 'int8');
      assert.equal(size, 4 * 16 + v.length);
      q.dispose();
    }
    const off = w.dataSync().slice() as Float32Array;
    assert.equal(exact(off, w.shape, ['int8']).encoding, 'fp32');
    w.dispose();
  });

  it('decoding refuses payloads of the wrong length, bad indices and unknown encodings', () => {
    assert.throws(() => decodeTensor('fp32', new Uint8Array(7), [2]), /fp32 payload of 7 bytes/);
    // k = 3 (2 bits) with index 3 in the first slot.
    const cb = new Uint8Array([3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0b11]);
    assert.throws(() => decodeTensor('codebook', cb, [1]), /index 3 at value 0/);
    assert.throws(
      () => decodeTensor('codebook', new Uint8Array([0, 1]), [1]),
      /codebook of 256|cut short|needs/,
    );
    assert.throws(() => decodeTensor('sparse', new Uint8Array([0, 1]), [8]), /sparse payload of 2 bytes/);
    assert.throws(() => decodeTensor('int8', new Uint8Array(4), [4]), /rank >= 2/);
    assert.throws(() => decodeTensor('zstd', new Uint8Array(4), [1]), /unknown encoding 'zstd'/);
  });
});

describe('rtz bundle: damaged and crafted files', () => {
  let good: Uint8Array;
  before(async () => {
    await tf.setBackend('native');
    const model = resnet8();
    clusterModel(model, { clusters: 16 });
    good = (await encodeBundle(model)).bytes;
  });

  /** Writes `bytes` to a fresh file and returns the error loading it gives. */
  async function failure(bytes: Uint8Array, name: string): Promise<{ path: string; error: RetortError }> {
    const path = join(scratch, `${name}.rtz`);
    writeFileSync(path, bytes);
    try {
      await loadBundle(path);
    } catch (e) {
      assert.ok(e instanceof RetortError, `not a RetortError: ${e}`);
      assert.equal(e.file, path);
      assert.ok(e.message.includes(path), e.message);
      return { path, error: e };
    }
    assert.fail(`${name}: loaded`);
  }

  /** The bundle with its manifest changed and header and checksums made consistent again. */
  function crafted(change: (m: RtzManifest, payload: Uint8Array) => Uint8Array | undefined): Uint8Array {
    const { manifest, payload } = parseBundle(good, 'good');
    const m = structuredClone(manifest);
    return assembleBundle(m, change(m, payload) ?? payload);
  }

  it('a flipped payload byte: checksum mismatch naming the file and the tensor', async () => {
    const { manifest, payload } = parseBundle(good, 'good');
    const w = manifest.weights[3]!;
    const bad = good.slice();
    bad[good.length - 32 - payload.length + w.offset + 1]! ^= 0x10;
    const { error } = await failure(bad, 'flipped');
    assert.match(error.message, /checksum mismatch/);
    assert.ok(error.message.includes(`tensor '${w.name}'`), error.message);
  });

  it('truncated, wrong magic, other version, trailing bytes, an oversized manifest: one clear error each', async () => {
    assert.match((await failure(good.subarray(0, good.length - 100), 'cut')).error.message, /truncated/);
    assert.match((await failure(good.subarray(0, 20), 'stub')).error.message, /truncated: 20 bytes/);
    const magic = good.slice();
    magic[1] = 0x58;
    assert.match((await failure(magic, 'magic')).error.message, /not a Retort \.rtz bundle/);
    const version = good.slice();
    new DataView(version.buffer).setUint32(8, 2, true);
    assert.match((await failure(version, 'version')).error.message, /version 2/);
    const long = new Uint8Array(good.length + 3);
    long.set(good);
    assert.match((await failure(long, 'long')).error.message, /3 bytes of trailing data/);
    const huge = good.slice();
    new DataView(huge.buffer).setUint32(16, 2 ** 31, true);
    assert.match((await failure(huge, 'huge')).error.message, /manifest too large/);
  });

  it('crafted files with valid checksums: unknown encoding, offsets out of range, a short payload, a manifest bomb', async () => {
    const name = parseBundle(good, 'good').manifest.weights[0]!.name;
    const unknown = crafted((m) => {
      (m.weights[0] as { encoding: string }).encoding = 'zstd';
      return undefined;
    });
    const e1 = (await failure(unknown, 'unknown')).error.message;
    assert.match(e1, /unknown encoding "zstd"/);
    assert.ok(e1.includes(name), e1);
    const outside = crafted((m, p) => {
      m.weights[0]!.offset = p.length;
      return undefined;
    });
    assert.match((await failure(outside, 'outside')).error.message, /outside the \d+-byte payload/);
    // The first tensor's bytes one short, with a matching sha256: the decoder names the tensor.
    const short = crafted((m, p) => {
      const w = m.weights[0]!;
      w.length -= 1;
      w.sha256 = createHash('sha256')
        .update(p.subarray(w.offset, w.offset + w.length))
        .digest('hex');
      return undefined;
    });
    assert.match((await failure(short, 'short')).error.message, new RegExp(`tensor '${name}': `));
    // A header that understates the inflated manifest (a deflate bomb), with its checksum redone.
    const bomb = good.slice();
    new DataView(bomb.buffer).setUint32(16, 10, true);
    bomb.set(
      createHash('sha256')
        .update(bomb.subarray(0, bomb.length - 32))
        .digest(),
      bomb.length - 32,
    );
    assert.match((await failure(bomb, 'bomb')).error.message, /inflates past the 10 bytes/);
  });

  it('any single flipped byte or truncation fails with a RetortError (never another exception)', async () => {
    let seed = 1;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 60; i++) {
      const bad = good.slice();
      bad[next() % bad.length]! ^= 1 + (next() % 255);
      await failure(bad, 'fuzz');
      await failure(good.subarray(0, next() % good.length), 'fuzz-cut');
    }
  });

  it('writeBundle does not replace an existing file unless asked', async () => {
    const path = join(scratch, 'existing.rtz');
    writeFileSync(path, 'user data');
    await assert.rejects(writeBundle(resnet8(), path), /already exists/);
    assert.equal(readFileSync(path, 'utf8'), 'user data');
  });
});
