import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as ort from 'onnxruntime-node';
import { exportOnnx } from '../../src/export/onnx.js';
import { buildModel } from '../../src/models/index.js';
import { checkTable, summarizeErrors } from '../../src/search/latency-check.js';
import {
  decompose,
  defaultTablePath,
  fitConstant,
  fitConstantPerUnit,
  fixedKey,
  type LatencySetting,
  LatencyTable,
  latencyMeasurer,
  type MachineFingerprint,
  type MeasureFn,
  nchwBoundary,
  ownKernelMs,
  unitModel,
} from '../../src/search/latency-table.js';
import { RetortError } from '../../src/util/errors.js';

type Sym = tfl.SymbolicTensor;
const opts = { inputShape: [28, 28, 1] as [number, number, number], numClasses: 10, seed: 1 };

/** input -> [pad] -> conv -> bn -> relu -> gap -> dense, with the conv's stride and width given. */
function small(stride: number, filters: number, name: string, size = 12): tfl.LayersModel {
  const x = tfl.input({ shape: [size, size, 3] });
  let y: Sym = x;
  if (stride > 1) y = tfl.layers.zeroPadding2d({ padding: [1, 1] }).apply(y) as Sym;
  y = tfl.layers
    .conv2d({
      filters,
      kernelSize: 3,
      strides: stride,
      padding: stride > 1 ? 'valid' : 'same',
      useBias: false,
    })
    .apply(y) as Sym;
  y = tfl.layers.batchNormalization().apply(y) as Sym;
  y = tfl.layers.activation({ activation: 'relu' }).apply(y) as Sym;
  y = tfl.layers.dropout({ rate: 0.5 }).apply(y) as Sym;
  y = tfl.layers.globalAveragePooling2d({}).apply(y) as Sym;
  y = tfl.layers.dense({ units: 5 }).apply(y) as Sym;
  return tfl.model({ inputs: x, outputs: y, name });
}

const fp = (cpu: string): MachineFingerprint => ({
  cpu,
  arch: 'x64',
  cores: 2,
  flags: ['avx2'],
  isa: 'x86-64-v3',
  isaCap: null,
  addon: 'abc',
  nativeThreads: 'default',
  ortThreads: 2,
  node: '20',
  tfjs: '4.22.0',
  onnxruntime: '1.30.0',
});
const S: LatencySetting = { runtime: 'native', batch: 1 };
const S64: LatencySetting = { runtime: 'onnxruntime', batch: 64 };

/** Deterministic fake timings: units by key length, fixed cost 0.5 ms, whole models from `whole`. */
function fakeMeasure(whole: Record<string, number> = {}): MeasureFn & { calls: string[] } {
  const calls: string[] = [];
  const fn = async ({ key, model, setting, what }: Parameters<MeasureFn>[0]) => {
    if (what === 'model') {
      const name = model().name;
      calls.push(`whole ${name}`);
      return whole[name] ?? 100;
    }
    calls.push(key!);
    return (what === 'fixed' ? 0.5 : key!.length / 10) * (setting.batch === 64 ? 10 : 1);
  };
  return Object.assign(fn, { calls });
}

let dir: string;
before(async () => {
  await tf.setBackend('native');
  dir = mkdtempSync(join(tmpdir(), 'retort-latency-table-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('latency table: units and keys', () => {
  it('identical layers share a key; a different stride, width or input shape changes it', () => {
    const key = (m: tfl.LayersModel) => decompose(m).units[0]!.key;
    assert.equal(key(small(1, 8, 'a')), key(small(1, 8, 'b')), 'names and weights do not matter');
    assert.notEqual(key(small(1, 8, 'a')), key(small(2, 8, 'b')));
    assert.notEqual(key(small(1, 8, 'a')), key(small(1, 16, 'b')));
    assert.notEqual(key(small(1, 8, 'a')), key(small(1, 8, 'b', 14)));
    assert.match(
      key(small(2, 8, 'a')),
      /^conv2d in=12x12x3 k=3x3 s=2x2 .*pad=valid\+\[\[1,1\],\[1,1\]\] f=8 .*bn=1 post=relu$/,
    );
  });

  it('a conv takes its padding, batch norm and activation (as the ONNX export and onnxruntime fuse them)', () => {
    const m = small(2, 8, 'm');
    const d = decompose(m);
    assert.deepEqual(
      d.units.map((u) => [u.kind, u.layers.map((l) => l.getClassName())]),
      [
        ['conv2d', ['ZeroPadding2D', 'Conv2D', 'BatchNormalization', 'Activation']],
        ['gap', ['GlobalAveragePooling2D']],
        ['dense', ['Dense']],
      ],
    );
    assert.deepEqual(d.units[0]!.outputShape, [6, 6, 8]);
    assert.deepEqual(
      d.zeroCost.map((z) => z.className),
      ['InputLayer', 'Dropout'],
    );
    assert.ok(d.zeroCost.every((z) => z.reason.length > 0));
  });

  it('every layer of the zoo models is in exactly one unit or listed as zero-cost', () => {
    for (const m of [
      buildModel('resnet8', opts),
      buildModel('mobilenetv2', { ...opts, widthMult: 0.25 }),
      buildModel('shufflenetv2', { ...opts, netSize: 0.2 }),
    ]) {
      const d = decompose(m);
      const seen = [
        ...d.units.flatMap((u) => u.layers.map((l) => l.name)),
        ...d.zeroCost.map((z) => z.layer),
      ];
      assert.equal(new Set(seen).size, seen.length, `${m.name}: a layer in two units`);
      assert.deepEqual([...seen].sort(), m.layers.map((l) => l.name).sort(), m.name);
    }
  });

  it('repeated blocks reuse keys (resnet20: 3 blocks per stage)', () => {
    const d = decompose(buildModel('resnet20', opts));
    assert.ok(new Set(d.units.map((u) => u.key)).size < d.units.length / 2);
  });

  it('a shared layer and a merge of unequal shapes are errors naming the layer', () => {
    const x = tfl.input({ shape: [4, 4, 2] });
    const shared = tfl.layers.conv2d({ filters: 2, kernelSize: 1, name: 'twice' });
    const y = shared.apply(shared.apply(x) as Sym) as Sym;
    assert.throws(() => decompose(tfl.model({ inputs: x, outputs: y })), /layer 'twice'.*called 2 times/);

    const gate = tfl.layers
      .reshape({ targetShape: [1, 1, 2] })
      .apply(tfl.layers.globalAveragePooling2d({}).apply(x) as Sym) as Sym;
    const se = tfl.layers.multiply({ name: 'se_mul' }).apply([x, gate]) as Sym;
    const unit = decompose(tfl.model({ inputs: x, outputs: se })).units.find((u) => u.kind === 'multiply')!;
    assert.throws(() => unitModel(unit), /layer 'se_mul'.*unequal shapes/);
  });

  it('one-unit models rebuild the unit on its input shape (a concat of unequal widths from slices)', () => {
    const x = tfl.input({ shape: [5, 5, 6] });
    const a = tfl.layers.conv2d({ filters: 2, kernelSize: 1 }).apply(x) as Sym;
    const cat = tfl.layers.concatenate({ name: 'cat' }).apply([x, a]) as Sym;
    const m = tfl.model({ inputs: x, outputs: cat });
    for (const u of decompose(m).units) {
      const um = unitModel(u);
      assert.deepEqual(um.outputs[0]!.shape.slice(1), u.outputShape, u.key);
      const y = um.predict(tf.zeros([2, ...(um.inputs[0]!.shape.slice(1) as number[])])) as tf.Tensor;
      assert.deepEqual(y.shape, [2, ...u.outputShape]);
      y.dispose();
      um.dispose();
    }
  });
});

describe('latency table: file, fingerprint, prediction', () => {
  it('round-trips through the file and measures nothing twice', async () => {
    const path = defaultTablePath(join(dir, 'run'));
    const m = small(1, 8, 'rt');
    const t = await LatencyTable.open(path, { fingerprint: fp('A') });
    const f = fakeMeasure();
    const first = await t.ensure([m], [S, S64], f);
    assert.equal(first.cached, 0);
    assert.equal(f.calls.length, first.measured);
    const t2 = await LatencyTable.open(path, { fingerprint: fp('A') });
    const again = await t2.ensure([m], [S, S64], f);
    assert.deepEqual(again, { measured: 0, cached: first.measured });
    const key = decompose(m).units[0]!.key;
    assert.equal(t2.get(S, key), key.length / 10);
    assert.equal(t2.get(S64, key), key.length);
  });

  it('another fingerprint never reuses the table; both machines stay in the file', async () => {
    const path = join(dir, 'fp.json');
    const m = small(1, 8, 'fp');
    await (await LatencyTable.open(path, { fingerprint: fp('A') })).ensure([m], [S], fakeMeasure());
    const b = await LatencyTable.open(path, { fingerprint: fp('B') });
    assert.equal(b.size(S), 0);
    const f = fakeMeasure();
    await b.ensure([m], [S], f);
    assert.ok(f.calls.length > 0, 'B measures for itself');
    const file = JSON.parse(readFileSync(path, 'utf8')) as { machines: Record<string, unknown> };
    assert.equal(Object.keys(file.machines).length, 2);
    assert.ok((await LatencyTable.open(path, { fingerprint: fp('A') })).size(S) > 0);
  });

  it('an interrupted build keeps the entries measured before it stopped', async () => {
    const path = join(dir, 'int.json');
    const t = await LatencyTable.open(path, { fingerprint: fp('A') });
    let n = 0;
    const failing: MeasureFn = async (req) => {
      if (++n === 3) throw new Error('interrupted');
      return fakeMeasure()(req);
    };
    await assert.rejects(t.ensure([small(1, 8, 'i')], [S], failing), /interrupted/);
    assert.equal((await LatencyTable.open(path, { fingerprint: fp('A') })).size(S), 2);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('int.json') && f.endsWith('.tmp')),
      [],
      'no temp file left',
    );
  });

  it('a truncated or foreign file is an error naming it; rebuild moves it aside', async () => {
    const path = join(dir, 'bad.json');
    await (await LatencyTable.open(path, { fingerprint: fp('A') })).ensure(
      [small(1, 8, 'b')],
      [S],
      fakeMeasure(),
    );
    const text = readFileSync(path, 'utf8');
    writeFileSync(path, text.slice(0, text.length >> 1));
    await assert.rejects(
      LatencyTable.open(path, { fingerprint: fp('A') }),
      (e: unknown) =>
        e instanceof RetortError && e.message.includes(path) && /truncated or corrupt/.test(e.message),
    );
    writeFileSync(path, JSON.stringify({ format: 'something-else', entries: [] }));
    await assert.rejects(LatencyTable.open(path, { fingerprint: fp('A') }), (e: unknown) =>
      String(e).includes(`${path}: not a retort-latency-table version 1 file`),
    );
    const t = await LatencyTable.open(path, { fingerprint: fp('A'), onCorrupt: 'rebuild' });
    assert.equal(t.size(S), 0);
    assert.match(t.notices[0]!, /moved to .*bad\.json\.corrupt-\d+/);
    assert.ok(
      readdirSync(dir).some((f) => f.startsWith('bad.json.corrupt-')),
      'the old file is kept',
    );
    assert.ok(!existsSync(path), 'nothing written before the first entry');
  });

  it('predict = sum of (unit - fixed cost of its output) + the overhead; fitted overhead replaces it', async () => {
    const path = join(dir, 'pred.json');
    const m = small(2, 8, 'pred');
    const t = await LatencyTable.open(path, { fingerprint: fp('A') });
    await t.ensure([m], [S], fakeMeasure());
    const p = t.predict(m, S);
    const units = decompose(m).units;
    const sum = units.reduce((a, u) => a + u.key.length / 10 - 0.5, 0);
    assert.equal(p.overheadSource, 'fixed-cost');
    assert.equal(p.overheadMs, 0.5);
    assert.ok(Math.abs(p.ms - (sum + 0.5)) < 1e-9);
    assert.deepEqual(
      p.units.map((u) => u.key),
      units.map((u) => u.key),
    );

    const other = small(1, 16, 'other');
    const fit = await t.fitOverhead([m, other], S, fakeMeasure({ pred: sum + 2, other: 50 }));
    await t.ensure([other], [S], fakeMeasure());
    const s2 = t.predict(other, S).ms - t.predict(other, S).overheadMs;
    assert.ok(Math.abs(fit.ms - fitConstant([sum + 2, 50], [sum, s2])) < 1e-9);
    const q = t.predict(m, S);
    assert.equal(q.overheadSource, 'fitted');
    assert.ok(Math.abs(q.ms - (sum + fit.ms)) < 1e-9);
    const reread = await LatencyTable.open(path, { fingerprint: fp('A') });
    assert.equal(reread.overhead(S)?.ms, fit.ms, 'the fit is saved');
  });

  it('onnxruntime entries are kernel time: predict = sum of units + the call cost of the model', async () => {
    const m = small(2, 8, 'ortpred');
    const t = await LatencyTable.open(join(dir, 'ortpred.json'), { fingerprint: fp('A') });
    const f = fakeMeasure();
    await t.ensure([m], [S64], f);
    const units = decompose(m).units;
    assert.deepEqual(f.calls, [...units.map((u) => u.key), fixedKey([5])], 'no per-unit fixed cost');
    const sum = units.reduce((a, u) => a + u.key.length, 0);
    assert.ok(Math.abs(t.predict(m, S64).ms - (sum + 5)) < 1e-9);
  });

  it('ownKernelMs sums the unit own kernels per timed run, without boundary reorders', () => {
    const run = (ts: number) => ({ cat: 'Session', name: 'model_run', ts, dur: 100 });
    const node = (name: string, op: string, ts: number, dur: number) => ({
      cat: 'Node',
      name: `${name}_kernel_time`,
      ts,
      dur,
      args: { op_name: op },
    });
    const events = [
      run(0), // warmup
      node('unit0', 'Conv', 10, 9000),
      ...[1000, 2000, 3000].flatMap((t, i) => [
        run(t),
        node('reorder_in', 'ReorderInput', t + 1, 500),
        node('unit0', 'Conv', t + 10, 1000 * (i + 1)),
        node('unit1', 'Relu', t + 20, 100),
        node('input.nchw__0', 'Transpose', t + 30, 700),
        node('output', 'Identity', t + 40, 300),
        node('reorder_out', 'ReorderOutput', t + 50, 500),
      ]),
    ];
    assert.equal(ownKernelMs(events, 3), 2.1, 'median of 1.1, 2.1 and 3.1 ms');
  });

  it('an unmeasured key is an error that says what to run', async () => {
    const t = await LatencyTable.open(join(dir, 'none.json'), { fingerprint: fp('A') });
    assert.throws(() => t.predict(small(1, 8, 'none'), S), /not measured at native\/b1 .*table\.ensure/);
  });

  it('fitConstant minimises the relative squared error', () => {
    const m = [10, 20, 40];
    const s = [8, 17, 36];
    const c = fitConstant(m, s);
    const loss = (k: number) => m.reduce((a, mi, i) => a + ((mi - s[i]! - k) / mi) ** 2, 0);
    assert.ok(loss(c) < loss(c + 0.01) && loss(c) < loss(c - 0.01));
    assert.equal(fitConstant([5, 5], [3, 3]), 2);
    const fit = fitConstantPerUnit(
      [10 + 1 + 0.5 * 4, 20 + 1 + 0.5 * 30, 7 + 1 + 0.5 * 12],
      [10, 20, 7],
      [4, 30, 12],
    );
    assert.ok(Math.abs(fit.c - 1) < 1e-9 && Math.abs(fit.perUnit - 0.5) < 1e-9, 'exact data, exact fit');
    assert.throws(() => fitConstantPerUnit([3, 4], [1, 2], [5, 5]), /different unit counts/);
  });

  it('a per-unit overhead is fitted and used on request', async () => {
    const t = await LatencyTable.open(join(dir, 'perunit.json'), { fingerprint: fp('A') });
    const a = small(1, 8, 'pa');
    const b = buildModel('resnet8', { ...opts, name: 'pb' });
    await t.ensure([a, b], [S], fakeMeasure());
    const sum = (m: tfl.LayersModel) => t.predict(m, S).ms - t.predict(m, S).overheadMs;
    const n = (m: tfl.LayersModel) => decompose(m).units.length;
    const whole = { pa: sum(a) + 0.3 + 0.02 * n(a), pb: sum(b) + 0.3 + 0.02 * n(b) };
    const fit = await t.fitOverhead([a, b], S, fakeMeasure(whole), { perUnit: true });
    assert.ok(Math.abs(fit.ms - 0.3) < 1e-9 && Math.abs(fit.perUnitMs - 0.02) < 1e-9);
    assert.ok(Math.abs(t.predict(b, S).ms - whole.pb) < 1e-9);
  });

  it('checkTable: relative errors per model and their median', async () => {
    const t = await LatencyTable.open(join(dir, 'check.json'), { fingerprint: fp('A') });
    const ms = [small(1, 8, 'c1'), small(1, 16, 'c2'), small(2, 8, 'c3')];
    const f = fakeMeasure();
    await t.ensure(ms, [S], f);
    const pred = ms.map((m) => t.predict(m, S).ms);
    const whole = { c1: pred[0]! * 2, c2: pred[1]!, c3: pred[2]! / 0.8 };
    const [r] = await checkTable(ms, t, { settings: [S], measure: fakeMeasure(whole) });
    assert.deepEqual(
      r!.rows.map((row) => row.model),
      ['c1', 'c2', 'c3'],
    );
    const errs = r!.rows.map((row) => row.relError);
    assert.ok(
      Math.abs(errs[0]! - -0.5) < 1e-12 && Math.abs(errs[1]!) < 1e-12 && Math.abs(errs[2]! - -0.2) < 1e-12,
    );
    assert.ok(Math.abs(r!.medianAbsRelError - 0.2) < 1e-12);
    assert.ok(Math.abs(r!.maxAbsRelError - 0.5) < 1e-12);
    const s = summarizeErrors(S, [
      { model: 'a', measuredMs: 10, predictedMs: 11 },
      { model: 'b', measuredMs: 10, predictedMs: 7 },
    ]);
    assert.ok(Math.abs(s.medianAbsRelError - 0.2) < 1e-12, 'median of 0.1 and 0.3');
  });
});

describe('latency table: measuring', () => {
  it('the ONNX unit without its boundary transposes computes the same map in NCHW', async () => {
    const m = small(1, 4, 'onnx');
    const u = decompose(m).units[0]!;
    const um = unitModel(u);
    const bytes = exportOnnx(um);
    const stripped = nchwBoundary(bytes, [12, 12, 3]);
    assert.deepEqual(stripped.shape, [3, 12, 12]);
    const x = tf.randomNormal([1, 12, 12, 3], 0, 1, 'float32', 3);
    const ref = tf.transpose(um.predict(x) as tf.Tensor, [0, 3, 1, 2]);
    const s = await ort.InferenceSession.create(stripped.bytes);
    const xin = tf.transpose(x, [0, 3, 1, 2]);
    const out = await s.run({
      input: new ort.Tensor('float32', xin.dataSync() as Float32Array, [1, 3, 12, 12]),
    });
    await s.release();
    const y = out['output']!;
    assert.deepEqual(y.dims, [1, 4, 12, 12]);
    const r = ref.dataSync();
    const d = y.data as Float32Array;
    for (let i = 0; i < r.length; i++) assert.ok(Math.abs(r[i]! - d[i]!) < 1e-4, `element ${i}`);
    tf.dispose([x, ref, xin]);
  });

  it('the real measurer times both runtimes and refuses a non-native backend', async () => {
    const measure = latencyMeasurer({ warmup: 1, repeats: 2, minTimeMs: 0 });
    const m = small(1, 4, 'timed');
    for (const setting of [S, { runtime: 'onnxruntime', batch: 2 } as const]) {
      const ms = await measure({ setting, what: 'model', key: undefined, model: () => m });
      assert.ok(Number.isFinite(ms) && ms > 0, `${setting.runtime}: ${ms}`);
    }
    const u = decompose(m).units[0]!;
    const um = unitModel(u);
    const kernel = await measure({ setting: S64, what: 'unit', key: u.key, model: () => um });
    assert.ok(Number.isFinite(kernel) && kernel > 0, `onnxruntime unit kernel time: ${kernel}`);
    um.dispose();
    await tf.setBackend('cpu');
    try {
      await assert.rejects(
        measure({ setting: S, what: 'model', key: undefined, model: () => m }),
        /active backend is 'cpu'/,
      );
    } finally {
      await tf.setBackend('native');
    }
  });

  it('fixed-cost keys name the output shape', () => {
    assert.equal(fixedKey([7, 7, 16]), 'fixed out=7x7x16');
  });
});
