/**
 * What the fuzz harness feeds and to whom: for each reader or loader, a valid seed file made here
 * and the call that reads a (mutated) copy of it. A call either returns (accepted), throws a
 * RetortError (refused: Retort's own, clear error) or throws anything else (a finding).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { loadExperiment } from '../../src/config/load.js';
import { loadCifar } from '../../src/data/cifar.js';
import { loadCsv } from '../../src/data/csv.js';
import { readIdx } from '../../src/data/idx.js';
import { decodeImage, loadImageFolder } from '../../src/data/image-folder.js';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { encodeBundle, loadBundle } from '../../src/export/rtz.js';
import { importOnnx } from '../../src/models/onnx-import.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import type { Rng } from '../../src/util/rng.js';

export interface FuzzTarget {
  name: string;
  /** Text formats also get token-level mutations. */
  text: boolean;
  /** PNG: chunk CRCs are recomputed after half of the mutations, so they reach the decoder. */
  png?: boolean;
  /** Writes the seed layout under `dir`; returns the valid bytes of the file that gets mutated. */
  setup(dir: string): Uint8Array;
  /** Where the mutated bytes go (a file under `dir`), chosen per case. */
  file(dir: string, rng: Rng): string;
  /** Reads it the way Retort does (a promise is awaited). */
  read(dir: string, file: string): unknown;
}

function pngBytes(w: number, h: number, seed: number): Uint8Array {
  const png = new PNG({ width: w, height: h });
  for (let i = 0; i < w * h * 4; i++) png.data[i] = (i * 37 + seed * 11) % 256;
  return PNG.sync.write(png);
}

function jpegBytes(w: number, h: number): Uint8Array {
  const data = Buffer.alloc(w * h * 4);
  for (let i = 0; i < data.length; i++) data[i] = (i * 13) % 256;
  return jpeg.encode({ data, width: w, height: h }, 80).data;
}

function idxBytes(dims: number[]): Uint8Array {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h[2] = 0x08;
  h[3] = dims.length;
  for (const [i, d] of dims.entries()) h.writeUInt32BE(d, 4 + 4 * i);
  const n = dims.reduce((a, b) => a * b, 1);
  return Buffer.concat([h, Buffer.from(Uint8Array.from({ length: n }, (_, i) => (i * 7) % 256))]);
}

/** A version-2 checkpoint in saveCheckpoint's layout (made here so that no tensors are needed). */
function checkpointBytes(): Uint8Array {
  const tensors = [
    { name: 'w0/conv/kernel', shape: [3, 3, 1, 4], offset: 0, length: 36 },
    { name: 'w1/conv/bias', shape: [4], offset: 36, length: 4 },
    { name: 'opt/iterations', shape: [], offset: 40, length: 1 },
  ];
  let json = Buffer.from(
    JSON.stringify({ epoch: 2, globalStep: 20, meta: { records: [{ epoch: 1 }] }, tensors }),
  );
  json = Buffer.concat([json, Buffer.alloc((4 - (json.length % 4)) % 4, 0x20)]);
  const data = Buffer.from(Float32Array.from({ length: 41 }, (_, i) => Math.sin(i)).buffer);
  const out = Buffer.alloc(44 + json.length + data.length);
  out.writeUInt32LE(0x4b435452, 0);
  out.writeUInt32LE(2, 4);
  out.writeUInt32LE(json.length, 8);
  json.copy(out, 44);
  data.copy(out, 44 + json.length);
  createHash('sha256').update(out.subarray(44)).digest().copy(out, 12);
  return out;
}

const CONFIG = `# a valid experiment
name: fuzz-run
seed: 3
model: { name: resnet8, options: { widthMult: 1 } }
teacher: { model: { name: resnet20 }, run: runs/teacher }
data: { dataset: fashion-mnist, batchSize: 128, cropPadding: 2, hflip: true }
losses:
  - { name: ce, weight: 0.1 }
  - { name: kd, weight: 0.9, T: 4 }
optimizer: { name: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.0005 }
schedule: { kind: cosine, warmupEpochs: 1 }
epochs: 30
`;

const CSV = `id,a,b,"c d",label
1,0.5,-1.25,3e2,cat
2,1,2,3,dog
3,-0.0,1e-3,"4",cat
4,7,8,9,dog
`;

function cifarBatch(n: number): Uint8Array {
  const out = new Uint8Array(n * 3073);
  for (let i = 0; i < n; i++) {
    out[i * 3073] = i % 10;
    for (let p = 0; p < 3072; p++) out[i * 3073 + 1 + p] = (p + i) % 256;
  }
  return out;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The smallest committed PyTorch export: every op the ONNX importer knows, 36 KB. */
const ONNX_SEED = readFileSync(join(here, '..', 'fixtures', 'onnx-import', 'ops.onnx'));

/** A small .rtz bundle whose weights take every encoding (made once per process). */
const RTZ_SEED = await (async () => {
  const input = tfl.input({ shape: [4, 4, 2] });
  const conv = tfl.layers.conv2d({ filters: 3, kernelSize: 3, name: 'conv' });
  const out = tfl.layers
    .dense({ units: 5, name: 'fc' })
    .apply(tfl.layers.flatten().apply(conv.apply(input))) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: input, outputs: out });
  const k = Float32Array.from({ length: 54 }, (_, i) => ((i * 7) % 5) * 0.25 - 0.5); // a codebook
  const fc = Float32Array.from({ length: 60 }, (_, i) => (i % 4 === 0 ? (i - 30) / 8 : 0)); // sparse
  model.setWeights([tf.tensor(k, [3, 3, 2, 3]), tf.zeros([3]), tf.tensor(fc, [12, 5]), tf.ones([5])]);
  const { bytes } = await encodeBundle(model);
  model.dispose();
  return bytes;
})();

/** Disposes what a loader returned, so that a worker's memory measures one case. */
function disposing(m: { dispose(): unknown }): void {
  m.dispose();
}

export const TARGETS: readonly FuzzTarget[] = [
  {
    name: 'png',
    text: false,
    png: true,
    setup: () => pngBytes(6, 5, 1),
    file: (dir) => join(dir, 'x.png'),
    read: (_d, f) => decodeImage(f),
  },
  {
    name: 'jpeg',
    text: false,
    setup: () => jpegBytes(8, 8),
    file: (dir) => join(dir, 'x.jpg'),
    read: (_d, f) => decodeImage(f),
  },
  {
    name: 'image-folder',
    text: false,
    png: true,
    setup(dir) {
      for (const cls of ['a', 'b']) {
        mkdirSync(join(dir, 'train', cls), { recursive: true });
        for (const k of [1, 2]) writeFileSync(join(dir, 'train', cls, `${k}.png`), pngBytes(4, 3, k));
      }
      return pngBytes(4, 3, 1);
    },
    file: (dir, rng) => join(dir, 'train', rng.int(2) === 0 ? 'a' : 'b', `${1 + rng.int(2)}.png`),
    read: (dir) => loadImageFolder(dir, 'train', 3),
  },
  {
    name: 'idx',
    text: false,
    setup: () => idxBytes([5, 4, 3]),
    file: (dir) => join(dir, 'x-idx3-ubyte'),
    read: (_d, f) => readIdx(f),
  },
  {
    name: 'idx.gz',
    text: false,
    setup: () => gzipSync(idxBytes([5, 4, 3])),
    file: (dir) => join(dir, 'x-idx3-ubyte.gz'),
    read: (_d, f) => readIdx(f),
  },
  {
    name: 'cifar',
    text: false,
    setup: () => cifarBatch(3),
    file: (dir) => join(dir, 'test_batch.bin'),
    read: (dir) => loadCifar(dir, 'cifar10', 'test'),
  },
  {
    name: 'csv',
    text: true,
    setup: () => Buffer.from(CSV),
    file: (dir) => join(dir, 'train.csv'),
    read: (_d, f) => loadCsv(f, { labelColumn: 'label' }),
  },
  {
    name: 'checkpoint',
    text: false,
    setup: () => checkpointBytes(),
    file: (dir) => join(dir, 'last.ckpt'),
    read: (_d, f) => loadCheckpoint(f),
  },
  {
    name: 'config',
    text: true,
    setup: () => Buffer.from(CONFIG),
    file: (dir) => join(dir, 'exp.yaml'),
    read: (_d, f) => loadExperiment(f),
  },
  {
    name: 'onnx-import',
    text: false,
    setup: () => ONNX_SEED,
    file: (dir) => join(dir, 'model.onnx'),
    read: (_d, f) => disposing(importOnnx(readFileSync(f), { layout: 'nchw', file: f }).model),
  },
  {
    name: 'rtz',
    text: false,
    setup: () => RTZ_SEED,
    file: (dir) => join(dir, 'model.rtz'),
    read: async (_d, f) => disposing(await loadBundle(f)),
  },
];
