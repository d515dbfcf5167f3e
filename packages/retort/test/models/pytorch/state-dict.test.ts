/**
 * PyTorch state dicts into zoo models: the ResNet-20 trained in PyTorch (fixtures/onnx-teacher/,
 * saved with torch.save(model.state_dict())) loaded into the zoo's resnet20 gives PyTorch's logits;
 * the reader refuses what is not a state dict, and the mapping refuses keys that do not fit.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../../src/config/experiment.js';
import { buildData } from '../../../src/data/build.js';
import { FASHION_MNIST_DIR, loadIdxSplit } from '../../../src/data/fashion-mnist.js';
import { buildModel } from '../../../src/models/index.js';
import { loadStateDict, readTorchStateDict } from '../../../src/models/pytorch/state-dict.js';
import { loadTeacherSource, teacherTop1 } from '../../../src/teachers/load.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixture = join(here, '..', '..', 'fixtures', 'onnx-teacher');
const PT = join(fixture, 'resnet20-fmnist.pt');
const ONNX = join(fixture, 'resnet20-fmnist.onnx');
const meta = JSON.parse(readFileSync(join(fixture, 'resnet20-fmnist.json'), 'utf8')) as {
  mean: number[];
  std: number[];
  first16_logits: number[];
};
const scratch = mkdtempSync(join(tmpdir(), 'retort-state-dict-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('PyTorch state dict importer', () => {
  it("reads torch.save's archive: every tensor with its PyTorch shape", () => {
    const sd = readTorchStateDict(PT);
    assert.deepEqual(sd.get('conv1.weight')?.shape, [16, 1, 3, 3]);
    assert.deepEqual(sd.get('layer2.0.downsample.0.weight')?.shape, [32, 16, 1, 1]);
    assert.deepEqual(sd.get('fc.weight')?.shape, [10, 64]);
    assert.ok(!sd.has('bn1.num_batches_tracked'));
    const params = [...sd.values()].reduce((a, t) => a + t.data.length, 0);
    // 272,186 parameters plus a running mean and variance for each of the 784 BN channels: 273,754,
    // what tfjs counts as the weights of the zoo's resnet20.
    assert.equal(params, 272186 + 2 * 784);
  });

  it("a zoo resnet20 with the file's weights gives PyTorch's logits (<= 1e-4)", async () => {
    await tf.setBackend('native');
    const model = buildModel('resnet20', { inputShape: [28, 28, 1], numClasses: 10 });
    loadStateDict(model, PT);
    const test = loadIdxSplit(FASHION_MNIST_DIR, 't10k');
    const x = new Float32Array(16 * 784);
    for (let i = 0; i < x.length; i++) x[i] = (test.images[i]! / 255 - meta.mean[0]!) / meta.std[0]!;
    const logits = model.predict(tf.tensor4d(x, [16, 28, 28, 1])) as tf.Tensor;
    const got = logits.dataSync();
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - meta.first16_logits[i]!));
    assert.ok(worst <= 1e-4, `max |Retort - PyTorch| = ${worst}`);
    if (process.env['RETORT_SHOW'] === '1') console.log(`state dict: max |Retort - PyTorch| = ${worst}`);
    model.dispose();
  });

  it('Linear after a flattened map: rows reordered from (c, h, w) to (h, w, c)', async () => {
    await tf.setBackend('native');
    // deepnn's classifier.fc1 reads the flattened 8x8x32 map of its last conv block.
    const model = buildModel('deepnn', { inputShape: [32, 32, 3], numClasses: 10, seed: 1 });
    const sd = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const layer of model.layers)
      for (const w of layer.weights) {
        const role = w.originalName.split('/').at(-1)!;
        const [key, shape] =
          role === 'kernel'
            ? [
                `${layer.name}.weight`,
                layer.getClassName() === 'Dense'
                  ? [w.shape[1]!, w.shape[0]!]
                  : [w.shape[3]!, w.shape[2]!, w.shape[0]!, w.shape[1]!],
              ]
            : [`${layer.name}.bias`, w.shape];
        const n = (shape as number[]).reduce((a, b) => a * b, 1);
        sd.set(key, {
          shape: shape as number[],
          data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + key.length)),
        });
      }
    loadStateDict(model, sd);
    // Row (y, x, ch) of the tfjs kernel is PyTorch's column ch * 64 + y * 8 + x of fc1.weight.
    const fc1 = model.getLayer('classifier.fc1').getWeights()[0]!.arraySync() as number[][];
    const torch = sd.get('classifier.fc1.weight')!;
    const inF = torch.shape[1]!;
    for (const [y, x, ch, o] of [
      [0, 0, 0, 0],
      [3, 5, 7, 2],
      [7, 7, 31, 100],
    ] as const)
      assert.equal(fc1[(y * 8 + x) * 32 + ch]![o], torch.data[o * inF + ch * 64 + y * 8 + x]);
    model.dispose();
  });

  it('refuses other files, missing and unknown keys, wrong shapes', async () => {
    await tf.setBackend('native');
    const junk = join(scratch, 'junk.pt');
    writeFileSync(junk, 'PK not really');
    assert.throws(() => readTorchStateDict(junk), /junk\.pt: not a PyTorch zip archive/);
    const sd = readTorchStateDict(PT);
    const model = buildModel('resnet20', { inputShape: [28, 28, 1], numClasses: 10 });
    const before = model.getLayer('conv1').getWeights()[0]!.dataSync().slice();
    const missing = new Map(sd);
    missing.delete('layer3.2.bn2.running_var');
    assert.throws(() => loadStateDict(model, missing), /no 'layer3\.2\.bn2\.running_var'/);
    const extra = new Map(sd).set('head.weight', { shape: [1], data: new Float32Array(1) });
    assert.throws(() => loadStateDict(model, extra), /keys the model .* has no layer for: head\.weight/);
    const wrong = buildModel('resnet20', { inputShape: [28, 28, 1], numClasses: 7 });
    assert.throws(
      () => loadStateDict(wrong, sd),
      /'fc' kernel is \[64, 10\] from the file and \[64, 7\] in the model/,
    );
    assert.deepEqual(
      model.getLayer('conv1').getWeights()[0]!.dataSync(),
      before,
      'a refused load changes nothing',
    );
    model.dispose();
    wrong.dispose();
  });
});

describe('a zoo teacher from a PyTorch state dict (config teacher.stateDict)', () => {
  it("scores as in PyTorch on the student's data, normalized its own way", async () => {
    await tf.setBackend('native');
    const data = buildData(
      experimentSchema.shape.data.parse({ dataset: 'fashion-mnist', trainLimit: 512, testLimit: 500 }),
      1,
    );
    const cfg = experimentSchema.shape.teacher
      .unwrap()
      .parse({ model: { name: 'resnet20' }, stateDict: PT, mean: meta.mean, std: meta.std });
    const teacher = await loadTeacherSource(cfg, data);
    const top1 = await teacherTop1(teacher, data.test, data.shape);
    // The ONNX export of the same weights in onnxruntime, through the same data path.
    const onnx = await loadTeacherSource(
      experimentSchema.shape.teacher
        .unwrap()
        .parse({ onnx: ONNX, layout: 'nchw', mean: meta.mean, std: meta.std }),
      data,
    );
    assert.equal(top1, await teacherTop1(onnx, data.test, data.shape));
    assert.ok(top1 > 85, `top-1 ${top1}`);
    teacher.dispose();
    onnx.dispose();
    const bad = experimentSchema.safeParse({
      name: 'x',
      model: { name: 'lightnn' },
      teacher: { model: { name: 'resnet20' }, stateDict: PT, layout: 'nchw' },
    });
    assert.ok(!bad.success && /applies to onnx and tfjs teachers/.test(JSON.stringify(bad.error.issues)));
  });
});

/** A stored zip of `files` (what torch.save writes), for hand-made archives. */
function storedZip(files: Record<string, Uint8Array>): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of Object.entries(files)) {
    const n = new TextEncoder().encode(name);
    const local = new Uint8Array(30 + n.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, n.length, true);
    local.set(n, 30);
    const c = new Uint8Array(46 + n.length);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, n.length, true);
    cv.setUint32(42, offset, true);
    c.set(n, 46);
    parts.push(local, data);
    central.push(c);
    offset += local.length + data.length;
  }
  const cdSize = central.reduce((a, b) => a + b.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, central.length, true);
  ev.setUint16(10, central.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const all = [...parts, ...central, end];
  const out = new Uint8Array(all.reduce((a, b) => a + b.length, 0));
  let p = 0;
  for (const a of all) {
    out.set(a, p);
    p += a.length;
  }
  return out;
}

describe('the pickle reader runs nothing from the file', () => {
  it('refuses a pickle that names any other global (os.system here), a whole model, a truncated file', () => {
    const enc = (s: string) => Uint8Array.from(s, (ch) => ch.charCodeAt(0));
    // PROTO 2; GLOBAL os system; SHORT_BINUNICODE 'echo'; TUPLE1; REDUCE; STOP
    const evil = enc('\x80\x02cos\nsystem\n\x8c\x04echo\x85R.');
    const path = join(scratch, 'evil.pt');
    writeFileSync(path, storedZip({ 'evil/data.pkl': evil }));
    assert.throws(
      () => readTorchStateDict(path),
      /refers to os\.system, which a state dict does not contain/,
    );
    // An OrderedDict holding a non-tensor (what torch.save(model) or a training checkpoint holds).
    const notTensors = enc('\x80\x02ccollections\nOrderedDict\n)R(\x8c\x01a\x8c\x01bu.');
    writeFileSync(path, storedZip({ 'm/data.pkl': notTensors }));
    assert.throws(() => readTorchStateDict(path), /'a' is not a tensor \(save model\.state_dict\(\)/);
    writeFileSync(path, storedZip({ 'm/data.pkl': notTensors.subarray(0, 20) }));
    assert.throws(() => readTorchStateDict(path), /data\.pkl at byte \d+: (truncated|unterminated line)/);
    const bytes = readFileSync(PT);
    writeFileSync(path, bytes.subarray(0, bytes.length - 100));
    assert.throws(() => readTorchStateDict(path), /not a PyTorch zip archive/);
    // A 4-byte storage viewed as 2^31 elements with stride 0: refused before any allocation.
    const huge = enc(
      '\x80\x02ccollections\nOrderedDict\n)R(\x8c\x01w' +
        'ctorch._utils\n_rebuild_tensor_v2\n((\x8c\x07storagectorch\nFloatStorage\n\x8c\x010\x8c\x03cpuK\x01tQ' +
        'K\x00(\x8a\x05\x00\x00\x00\x80\x00t(K\x00t\x89tRu.',
    );
    writeFileSync(path, storedZip({ 'h/data.pkl': huge, 'h/data/0': new Uint8Array(4) }));
    assert.throws(
      () => readTorchStateDict(path),
      /'w' \(\[2147483648\] at offset 0\) does not fit its storage of 1/,
    );
  });
});
