/**
 * Tucker-2 decomposition (Kim et al., ICLR 2016): the three kernels of one conv (exact at full ranks,
 * the reported error is the measured one, the size rule's ranks), the EVBMF rank (recovers the rank
 * of low-rank-plus-noise matrices and the multilinear ranks of a noisy Tucker kernel, finds none in
 * noise), a model rebuilt with the factor layers (the same function at full ranks through strides,
 * padding and dilation and a dense SVD pair; MAC and weight accounting checked against
 * measure/model-stats.ts; skip reasons; loud errors), and the pipeline stage end to end with its
 * fp32 ONNX export check.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { svd } from '../../src/compress/lowrank.js';
import { edgeLayers } from '../../src/compress/lowrank-model.js';
import { planStages } from '../../src/compress/stages/registry.js';
import { tucker, tuckerSchema } from '../../src/compress/stages/tucker.js';
import {
  channelSvds,
  chooseRanks,
  type KernelShape,
  sizeRanks,
  tuckerKernels,
  tuckerWeights,
  vbmfRank,
  vbmfTau,
} from '../../src/compress/tucker.js';
import { tuckerModel, tuckerNames } from '../../src/compress/tucker-model.js';
import { dataSchema } from '../../src/config/experiment.js';
import { buildData } from '../../src/data/build.js';
import { modelStats } from '../../src/measure/model-stats.js';
import { buildModel } from '../../src/models/index.js';
import { pipelineSchema, runPipeline } from '../../src/run/compress.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-tucker-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const SHAPE: [number, number, number] = [28, 28, 1];
const resnet8 = () => buildModel('resnet8', { inputShape: SHAPE, numClasses: 10, seed: 3 });

function normal(shape: number[], seed: number, std = 1): Float32Array {
  return tf.tidy(() => tf.randomNormal(shape, 0, std, 'float32', seed).dataSync() as Float32Array);
}

/** K~ [kh kw, Cin, Cout] from the three factor kernels, as a flat HWIO array. */
function compose(first: tf.Tensor, core: tf.Tensor, last: tf.Tensor): Float32Array {
  return tf.tidy(() => {
    const [kh, kw, r1, r2] = core.shape as number[];
    const p = kh! * kw!;
    const cin = first.shape[2]!;
    const cout = last.shape[3]!;
    const cb = tf.matMul(tf.reshape(core, [p * r1!, r2!]), tf.reshape(last, [r2!, cout]));
    const a = tf.tile(tf.reshape(first, [1, cin, r1!]), [p, 1, 1]);
    return tf.matMul(a, tf.reshape(cb, [p, r1!, cout])).dataSync() as Float32Array;
  });
}

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    e += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return Math.sqrt(e / n);
}

/** A kernel of multilinear ranks (r1, r2) on its channel modes: G x_in A x_out B (+ noise). */
function tuckerKernel(shape: KernelShape, r1: number, r2: number, noise: number, seed: number): Float32Array {
  const [kh, kw, cin, cout] = shape;
  const p = kh * kw;
  return tf.tidy(() => {
    const g = tf.randomNormal([p * r1, r2], 0, 1, 'float32', seed);
    const b = tf.randomNormal([r2, cout], 0, 1, 'float32', seed + 1);
    const a = tf.randomNormal([1, cin, r1], 0, 1, 'float32', seed + 2);
    const gb = tf.reshape(tf.matMul(g, b), [p, r1, cout]);
    const k = tf.matMul(tf.tile(a, [p, 1, 1]), gb);
    return tf.add(k, tf.randomNormal(k.shape, 0, noise, 'float32', seed + 3)).dataSync() as Float32Array;
  });
}

describe('Tucker-2 kernels', () => {
  it('full ranks reproduce the kernel; lower ranks lose what the reported error says', () => {
    const shape: KernelShape = [3, 3, 5, 7];
    const k = normal([...shape], 1);
    const d = channelSvds(k, shape);
    for (const [r1, r2] of [
      [5, 7],
      [3, 4],
      [1, 2],
    ] as const) {
      const t = tuckerKernels(k, shape, d, r1, r2);
      const got = compose(
        tf.tensor(t.first, [1, 1, 5, r1]),
        tf.tensor(t.core, [3, 3, r1, r2]),
        tf.tensor(t.last, [1, 1, r2, 7]),
      );
      const measured = relDiff(got, k);
      if (r1 === 5 && r2 === 7) assert.ok(measured < 1e-5 && t.relError < 1e-5, `full: ${measured}`);
      else assert.ok(Math.abs(measured - t.relError) < 1e-5, `${r1}, ${r2}: ${measured} vs ${t.relError}`);
    }
    assert.throws(() => tuckerKernels(k, shape, d, 6, 7), /ranks must be integers in \[1, 5\] and \[1, 7\]/);
  });

  it('energy finds the multilinear ranks; HOSVD error is bounded by the two dropped energies', () => {
    const shape: KernelShape = [3, 3, 12, 16];
    const exact = tuckerKernel(shape, 3, 5, 0, 10);
    assert.deepEqual(chooseRanks(channelSvds(exact, shape), shape, { energy: 0.999999 }), [3, 5]);
    const k = normal([...shape], 2);
    const d = channelSvds(k, shape);
    for (const e of [0.5, 0.8, 0.95]) {
      const [r1, r2] = chooseRanks(d, shape, { energy: e });
      const t = tuckerKernels(k, shape, d, r1, r2);
      assert.ok(t.relError ** 2 <= 2 * (1 - e) + 1e-9, `energy ${e}: error ${t.relError}`);
    }
  });

  it('the size rule: the most weights at most f of the kernel, the same rho on both modes', () => {
    // rho = (-b + sqrt(b^2 + 4 a^2 f)) / (2 a), a = 9 * 64 * 64, b = 2 * 64^2: 0.6047 -> 38.
    assert.deepEqual(sizeRanks([3, 3, 64, 64], 0.5), [38, 38]);
    assert.ok(tuckerWeights([3, 3, 64, 64], 38, 38) <= 0.5 * 9 * 64 * 64);
    assert.ok(tuckerWeights([3, 3, 64, 64], 39, 39) > 0.5 * 9 * 64 * 64);
    for (const shape of [
      [3, 3, 16, 32],
      [5, 5, 3, 64],
      [3, 3, 128, 128],
    ] as KernelShape[]) {
      for (const f of [0.1, 0.3, 0.7]) {
        const [r1, r2] = sizeRanks(shape, f);
        const total = shape[0] * shape[1] * shape[2] * shape[3];
        assert.ok(r1 === 1 || r2 === 1 || tuckerWeights(shape, r1, r2) <= f * total, `${shape} ${f}`);
        assert.ok(Math.abs(r1 / shape[2] - r2 / shape[3]) <= 1 / Math.min(shape[2], shape[3]) + 1e-9);
      }
    }
    assert.throws(() => sizeRanks([3, 3, 4, 4], 0), /sizeFraction must be in \(0, 1\], got 0/);
  });
});

describe('EVBMF rank (Nakajima et al., JMLR 2013)', () => {
  it('tau_ solves Phi(tau) + Phi(tau / alpha) = 0: 2.5129 at alpha = 1', () => {
    assert.ok(Math.abs(vbmfTau(1) - 2.5129) < 1e-4, `${vbmfTau(1)}`);
    // scipy.optimize.brentq on the same equation, alpha = 64 / 576.
    assert.ok(Math.abs(vbmfTau(64 / 576) - 0.8641726) < 1e-6, `${vbmfTau(64 / 576)}`);
  });

  it('recovers the rank of low rank plus noise, either orientation; finds none in noise', () => {
    for (const [L, M, r, sigma] of [
      [30, 50, 4, 0.1],
      [64, 576, 10, 0.05],
      [200, 40, 6, 0.3],
    ] as const) {
      // Generated as [max, min] so that the Gram matrix of the SVD is the small one.
      const [R, C] = [Math.max(L, M), Math.min(L, M)];
      const y = tf.tidy(() => {
        const low = tf.matMul(
          tf.randomNormal([R, r], 0, 1, 'float32', L),
          tf.randomNormal([r, C], 0, 1, 'float32', M),
        );
        return tf.add(low, tf.randomNormal([R, C], 0, sigma, 'float32', r)).dataSync();
      });
      const d = svd(y, R, C);
      const e = vbmfRank(d.s, L, M);
      assert.equal(e.rank, r, `${L} x ${M}`);
      assert.ok(
        Math.abs(e.sigma2 / sigma ** 2 - 1) < 0.15,
        `${L} x ${M}: sigma2 ${e.sigma2} vs ${sigma ** 2}`,
      );
      // The singular values of Y^T are those of Y: the same estimate.
      assert.deepEqual(vbmfRank(d.s, M, L), e);
    }
    const noise = normal([576, 64], 5);
    const e = vbmfRank(svd(noise, 576, 64).s, 576, 64);
    assert.equal(e.rank, 0);
    assert.ok(Math.abs(e.sigma2 - 1) < 0.05, `sigma2 ${e.sigma2}`);
    assert.deepEqual(vbmfRank(new Float64Array(4), 4, 9), { rank: 0, sigma2: 0, threshold: 0 });
  });

  it('on the unfoldings of a noisy Tucker kernel: its multilinear ranks', () => {
    const shape: KernelShape = [3, 3, 32, 48];
    const k = tuckerKernel(shape, 5, 7, 0.1, 20);
    assert.deepEqual(chooseRanks(channelSvds(k, shape), shape, 'vbmf'), [5, 7]);
    // Pure noise: no component survives, and a conv keeps rank 1 per mode.
    assert.deepEqual(chooseRanks(channelSvds(normal([...shape], 21), shape), shape, 'vbmf'), [1, 1]);
  });
});

/** Strided, padded, dilated and non-square convs, a 1 x 1 conv, a depthwise conv and a dense layer. */
function oddModel(): tfl.LayersModel {
  const x = tfl.input({ shape: [13, 11, 3], name: 'input' });
  const init = (seed: number) => tfl.initializers.randomNormal({ seed, stddev: 0.3 });
  const conv = (name: string, args: Partial<Parameters<typeof tfl.layers.conv2d>[0]>, seed: number) =>
    tfl.layers.conv2d({
      name,
      filters: 6,
      kernelSize: 3,
      kernelInitializer: init(seed),
      biasInitializer: init(seed + 100),
      ...args,
    });
  let h = conv('c1', { filters: 8, strides: 2, padding: 'same', activation: 'relu' }, 1).apply(x);
  h = conv('c2', { dilationRate: 2, padding: 'valid', useBias: false }, 2).apply(h);
  h = conv(
    'c3',
    { filters: 10, kernelSize: [2, 3], strides: [1, 2], padding: 'same', activation: 'tanh' },
    3,
  ).apply(h);
  h = conv('pw', { kernelSize: 1 }, 4).apply(h);
  h = tfl.layers
    .depthwiseConv2d({ name: 'dw', kernelSize: 3, padding: 'same', depthwiseInitializer: init(5) })
    .apply(h);
  h = tfl.layers.flatten({ name: 'flat' }).apply(h);
  const y = tfl.layers
    .dense({ name: 'fc', units: 5, kernelInitializer: init(6) })
    .apply(h) as tfl.SymbolicTensor;
  return tfl.model({ inputs: x, outputs: y, name: 'odd' });
}

function outputs(m: tfl.LayersModel, x: tf.Tensor): Float32Array {
  return tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync() as Float32Array);
}

function relMaxDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let d = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return d / scale;
}

describe('Tucker-2 decomposition of models', () => {
  it('full ranks: the same function through strides, padding, dilation and a dense SVD pair', async () => {
    await tf.setBackend('native');
    const m = oddModel();
    const r = tuckerModel(m, { rank: { energy: 1 }, dense: 'svd', minSaving: -Infinity });
    assert.deepEqual(
      r.layers.map((l) => [l.layer, l.kind, l.ranks, l.maxRanks]),
      [
        ['c1', 'Conv2D', [3, 8], [3, 8]],
        ['c2', 'Conv2D', [8, 6], [8, 6]],
        ['c3', 'Conv2D', [6, 10], [6, 10]],
        ['fc', 'Dense', [5], [5]],
      ],
    );
    assert.deepEqual(r.skipped, [
      { layer: 'pw', reason: '1x1 conv: no spatial mode; a truncated SVD (lowrank) is smaller' },
      { layer: 'dw', reason: 'depthwise conv: no channel mixing to compress' },
    ]);
    for (const l of r.layers) assert.ok(l.relError < 1e-5, `${l.layer}: ${l.relError}`);
    const f = r.model;
    const cfg = (n: string) => f.getLayer(n).getConfig();
    const [a, b, c] = tuckerNames('c1');
    assert.deepEqual(
      [cfg(a)['kernelSize'], cfg(a)['strides'], cfg(a)['useBias'], cfg(a)['activation'], cfg(a)['filters']],
      [[1, 1], [1, 1], false, 'linear', 3],
    );
    assert.deepEqual(
      [cfg(b)['kernelSize'], cfg(b)['strides'], cfg(b)['padding'], cfg(b)['useBias'], cfg(b)['activation']],
      [[3, 3], [2, 2], 'same', false, 'linear'],
    );
    assert.deepEqual([cfg(c)['kernelSize'], cfg(c)['useBias'], cfg(c)['activation']], [[1, 1], true, 'relu']);
    assert.deepEqual(cfg('c2_tk_core')['dilationRate'], [2, 2]);
    assert.equal(f.getLayer('c2_tk_out').getWeights().length, 1, 'no bias where the conv had none');
    assert.deepEqual(cfg('c3_tk_core')['strides'], [1, 2]);
    assert.ok(f.getLayer('fc_lr_a') && f.getLayer('fc_lr_b'), 'the dense pair of lowrank-model.ts');
    assert.ok(!f.layers.some((l) => ['c1', 'c2', 'c3', 'fc'].includes(l.name)));
    const x = tf.randomNormal([3, 13, 11, 3], 0, 1, 'float32', 9);
    const d = relMaxDiff(outputs(f, x), outputs(m, x));
    assert.ok(d <= 1e-4, `relative difference ${d}`);
    assert.equal(m.layers.length, 8, 'the input model keeps its layers');
  });

  it('resnet8 at sizeFraction 0.5: ranks, weights and MACs as modelStats measures them', async () => {
    await tf.setBackend('native');
    const m = resnet8();
    assert.deepEqual(edgeLayers(m), ['conv1', 'fc']);
    const r = tuckerModel(m, { rank: { sizeFraction: 0.5 }, skip: edgeLayers(m) });
    assert.deepEqual(r.skipped, [
      { layer: 'conv1', reason: 'named in skip' },
      {
        layer: 'layer2.0.downsample.0',
        reason: '1x1 conv: no spatial mode; a truncated SVD (lowrank) is smaller',
      },
      {
        layer: 'layer3.0.downsample.0',
        reason: '1x1 conv: no spatial mode; a truncated SVD (lowrank) is smaller',
      },
      { layer: 'fc', reason: 'named in skip' },
    ]);
    const before = modelStats(m);
    const afterStats = modelStats(r.model);
    const cost = (s: typeof before, n: string) => s.layers.find((l) => l.name === n)!;
    assert.equal(r.layers.length, 6);
    for (const l of r.layers) {
      const k = m.getLayer(l.layer).getWeights()[0]!.shape as unknown as KernelShape;
      assert.deepEqual(l.ranks, sizeRanks(k, 0.5), l.layer);
      assert.deepEqual(l.maxRanks, [k[2], k[3]]);
      assert.equal(l.paramsBefore, cost(before, l.layer).params);
      assert.equal(l.macsBefore, cost(before, l.layer).macs);
      const parts = tuckerNames(l.layer).map((n) => cost(afterStats, n));
      assert.equal(
        l.paramsAfter,
        parts.reduce((s, p) => s + p.params, 0),
        l.layer,
      );
      assert.equal(
        l.macsAfter,
        parts.reduce((s, p) => s + p.macs, 0),
        l.layer,
      );
      assert.ok(l.paramsAfter <= 0.5 * l.paramsBefore && l.macsAfter < l.macsBefore, l.layer);
    }
    // layer2.0.conv1 has stride 2: its first factor runs at the (padded) input's resolution, the
    // core and the last at the output's 14 x 14.
    const s2 = r.layers.find((l) => l.layer === 'layer2.0.conv1')!;
    const [, hi, wi] = (m.getLayer('layer2.0.conv1').input as tfl.SymbolicTensor).shape as number[];
    assert.deepEqual(s2.ranks, [9, 18]);
    assert.equal(s2.macsAfter, hi! * wi! * 16 * 9 + 14 * 14 * (9 * 9 * 18 + 18 * 32));
    const convs = (s: typeof before) =>
      s.layers.filter((l) => l.className === 'Conv2D').reduce((a, l) => a + l.macs, 0);
    assert.deepEqual(r.convMacs, { before: convs(before), after: convs(afterStats) });
    assert.equal(
      r.convMacs.before - r.convMacs.after,
      r.layers.reduce((a, l) => a + l.macsBefore - l.macsAfter, 0),
    );
    assert.equal(
      r.model.countParams(),
      m.countParams() - r.layers.reduce((a, l) => a + l.paramsBefore - l.paramsAfter, 0),
    );
    // The reported error is what the three kernels miss.
    const w = m.getLayer('layer3.0.conv2').getWeights()[0]!.dataSync();
    const [a, b, c] = tuckerNames('layer3.0.conv2').map((n) => r.model.getLayer(n).getWeights()[0]!);
    const got = relDiff(compose(a!, b!, c!), w);
    const rep = r.layers.find((l) => l.layer === 'layer3.0.conv2')!.relError;
    assert.ok(Math.abs(got - rep) < 1e-4 && rep > 0.1, `${got} vs ${rep}`);
  });

  it('vbmf finds the ranks of a structured kernel; minSaving and dense keep are reported', async () => {
    await tf.setBackend('native');
    const x = tfl.input({ shape: [6, 6, 32], name: 'input' });
    let h = tfl.layers.conv2d({ name: 'c', filters: 48, kernelSize: 3, padding: 'same' }).apply(x);
    h = tfl.layers.conv2d({ name: 'noise', filters: 4, kernelSize: 3 }).apply(h);
    h = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(h);
    const y = tfl.layers.dense({ name: 'fc', units: 3 }).apply(h) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: x, outputs: y });
    const c = m.getLayer('c');
    c.setWeights([
      tf.tensor(tuckerKernel([3, 3, 32, 48], 5, 7, 0.1, 30), [3, 3, 32, 48]),
      c.getWeights()[1]!,
    ]);
    const r = tuckerModel(m, { rank: 'vbmf' });
    // The freshly initialized conv is noise to EVBMF: rank 1 on both modes.
    assert.deepEqual(
      r.layers.map((l) => [l.layer, l.ranks]),
      [
        ['c', [5, 7]],
        ['noise', [1, 1]],
      ],
    );
    assert.deepEqual(r.skipped, [{ layer: 'fc', reason: "dense layer (dense: 'keep')" }]);
    // At 95% of the weights no conv saves the default 10%.
    const big = tuckerModel(m, { rank: { sizeFraction: 0.95 } });
    assert.equal(big.layers.length, 0);
    const [r1, r2] = sizeRanks([3, 3, 32, 48], 0.95);
    const after = tuckerWeights([3, 3, 32, 48], r1, r2) + 48;
    assert.deepEqual(big.skipped[0], {
      layer: 'c',
      reason: `ranks ${r1}, ${r2} of 32, 48: ${after} parameters instead of 13872 (saving ${(100 * (1 - after / 13872)).toFixed(1)}% < minSaving 10.0%)`,
    });
    assert.ok(big.convMacs.after === big.convMacs.before);
  });

  it('bad options fail loudly, naming the option and the layer', () => {
    const m = resnet8();
    assert.throws(
      () => tuckerModel(m, { rank: { energy: 2 } }),
      /tucker: rank\.energy must be in \(0, 1\], got 2/,
    );
    assert.throws(
      () => tuckerModel(m, { rank: { sizeFraction: 0 } }),
      /rank\.sizeFraction must be in \(0, 1\], got 0/,
    );
    assert.throws(
      () => tuckerModel(m, { rank: 'svd' as 'vbmf' }),
      /tucker: rank must be \{ energy: e \}, \{ sizeFraction: f \} or 'vbmf', got "svd"/,
    );
    assert.throws(
      () => tuckerModel(m, { rank: { energy: 0.5, sizeFraction: 0.5 } as { energy: number } }),
      /tucker: rank must be/,
    );
    assert.throws(
      () => tuckerModel(m, { rank: 'vbmf', dense: 'tucker' as 'svd' }),
      /tucker: dense must be 'svd' or 'keep', got "tucker"/,
    );
    assert.throws(
      () => tuckerModel(m, { rank: 'vbmf', minSaving: 1 }),
      /tucker: minSaving must be < 1, got 1/,
    );
    assert.throws(
      () => tuckerModel(m, { rank: 'vbmf', skip: ['bn1'] }),
      /tucker: skip names 'bn1', a BatchNormalization, not a Conv2D, DepthwiseConv2D or Dense/,
    );
    assert.throws(
      () => tuckerModel(m, { rank: 'vbmf', skip: ['nope'] }),
      /skip names 'nope', which is no layer of model 'resnet8' \(its convs and dense layers: conv1, /,
    );
    const x = tfl.input({ shape: [5, 5, 2], name: 'in' });
    const h = tfl.layers.conv2d({ name: 'k', filters: 4, kernelSize: 3 }).apply(x);
    const y = tfl.layers
      .conv2d({ name: 'k_tk_core', filters: 4, kernelSize: 3 })
      .apply(h) as tfl.SymbolicTensor;
    assert.throws(
      () => tuckerModel(tfl.model({ inputs: x, outputs: y }), { rank: { energy: 1 }, minSaving: -Infinity }),
      /tucker: cannot factorize 'k': model '.*' has a layer 'k_tk_core'/,
    );
  });
});

describe('tucker stage', () => {
  it('parses with defaults, refuses unknown keys and following unstructured pruning', () => {
    assert.deepEqual(tuckerSchema.parse({}), {
      rank: 'vbmf',
      dense: 'keep',
      skipEdges: true,
      minSaving: 0.1,
    });
    assert.equal(tuckerSchema.safeParse({ rank: { energy: 0.9 }, ranks: 3 }).success, false);
    assert.equal(tuckerSchema.safeParse({ rank: { energy: 1.5 } }).success, false);
    assert.throws(
      () => planStages({ prune: { kind: 'unstructured', sparsity: 0.5 }, tucker: {} }, 'p'),
      /compress 'p': tucker after unstructured pruning would refill the zeros/,
    );
    assert.deepEqual(
      planStages({ lowrank: { rank: { energy: 0.9 } }, tucker: {}, quantize: { mode: 'qat' } }, 'p').map(
        (p) => p.stage.name,
      ),
      ['lowrank', 'tucker', 'quantize-qat'],
    );
    // rigl and lottery leave sparse kernels that the dense factors would refill.
    assert.throws(
      () => planStages({ rigl: { sparsity: 0.9 }, tucker: {} }, 'p'),
      /tucker after rigl would refill/,
    );
    assert.throws(
      () => planStages({ rigl: { sparsity: 0.9 }, lowrank: { rank: { energy: 0.9 } } }, 'p'),
      /lowrank after rigl/,
    );
    assert.throws(() => planStages({ rigl: { sparsity: 0.9 }, hash: { factor: 8 } }, 'p'), /hash after rigl/);
    assert.throws(() => planStages({ tucker: {}, hash: { factor: 8 } }, 'p'), /hash after tucker/);
  });

  it('refuses a model with no conv to factorize, naming why each layer was kept', async () => {
    await tf.setBackend('native');
    const model = buildModel('mlp', { inputShape: [28, 28, 1], numClasses: 10, hidden: 16 });
    const ctx = {
      model,
      masks: null,
      epochs: 0,
      log: () => {},
      finetune: async () => assert.fail('fine-tuned a model with nothing factorized'),
      calibrate: async () => assert.fail('calibrated'),
    };
    await assert.rejects(tucker.run(ctx, tuckerSchema.parse({})), /tucker: no conv to factorize \(.*fc1/);
  });

  it('runPipeline: resnet8 factorized, fine-tuned one epoch, measured, and its fp32 ONNX export checked', async () => {
    await tf.setBackend('native');
    const data = buildData(
      dataSchema.parse({ dataset: 'fashion-mnist', batchSize: 32, trainLimit: 64, testLimit: 64 }),
      0,
    );
    const make = () => buildModel('resnet8', { inputShape: data.shape, numClasses: data.numClasses });
    const cfg = pipelineSchema.parse({
      name: 't1',
      student: { run: 'unused' },
      finetune: { epochs: 1 },
      tucker: { rank: { sizeFraction: 0.5 } },
      export: ['onnx'],
    });
    const logs: string[] = [];
    // Throws when onnxruntime's logits differ from tfjs's by more than check.fp32MaxDiff (1e-4).
    const reports = await runPipeline(
      cfg,
      { model: make(), teacher: make(), data },
      join(scratch, 't1'),
      (l) => logs.push(l),
    );
    assert.deepEqual(
      reports.map((r) => r.stage),
      ['baseline', 'tucker', 'export-onnx'],
    );
    const [base, tk, onnx] = reports as [(typeof reports)[0], (typeof reports)[0], (typeof reports)[0]];
    assert.ok(tk.params < 0.75 * base.params && tk.macs < 0.75 * base.macs, `${tk.params} ${tk.macs}`);
    assert.ok(onnx.onnx !== undefined && onnx.onnx.maxAbsDiff <= 1e-4, `${onnx.onnx?.maxAbsDiff}`);
    const line = logs.find((l) => l.startsWith('tucker: '));
    assert.match(
      line ?? '',
      /^tucker: 6 layers factorized \(layer1\.0\.conv1 r9\/9, .*\); 4 kept whole; conv MACs (\d+) -> (\d+) \(\u2212\d+\.\d%\)$/,
    );
    const [, b, a] = /conv MACs (\d+) -> (\d+)/.exec(line!)!;
    assert.ok(Number(a) < Number(b));
  });
});
