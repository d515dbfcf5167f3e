/**
 * ONNX CNNs exported from PyTorch imported as trainable tfjs models (models/onnx-import.ts): the
 * trained ResNet-20 of fixtures/onnx-teacher/ (BatchNorms folded by the export), and
 * fixtures/onnx-import/ (make_onnx_import_fixtures.py): a MobileNetV2 with its BatchNorm nodes and a
 * net using the rest of the op list. Each must give onnxruntime's logits within 1e-4 on both
 * backends, train, prune and export again; unsupported graphs fail naming the node.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import onnxProto from 'onnx-proto';
import { pruneChannels } from '../../src/compress/prune/structured.js';
import { exportOnnx } from '../../src/export/onnx.js';
import { importOnnx } from '../../src/models/onnx-import.js';
import { RetortError } from '../../src/util/errors.js';
import { loadOrt } from '../../src/util/ort.js';

const { onnx } = onnxProto;
const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = {
  resnet20: join(here, '..', 'fixtures', 'onnx-teacher', 'resnet20-fmnist.onnx'),
  mobilenetv2: join(here, '..', 'fixtures', 'onnx-import', 'mobilenetv2.onnx'),
  ops: join(here, '..', 'fixtures', 'onnx-import', 'ops.onnx'),
};
const N = 6;

/** onnxruntime's logits for NHWC batch `x` fed to an NCHW file as NCHW. */
async function ortLogits(
  bytes: Uint8Array,
  x: tf.Tensor4D,
  layout: 'nchw' | 'nhwc' = 'nchw',
): Promise<Float32Array> {
  const ort = await loadOrt('test');
  const s = await ort.InferenceSession.create(bytes);
  const input = layout === 'nchw' ? tf.transpose(x, [0, 3, 1, 2]) : x;
  const out = await s.run({
    [s.inputNames[0]!]: new ort.Tensor('float32', input.dataSync() as Float32Array, input.shape),
  });
  if (input !== x) input.dispose();
  return out[s.outputNames[0]!]!.data as Float32Array;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const batch = () => tf.randomNormal([N, 28, 28, 1], 0, 1, 'float32', 7) as tf.Tensor4D;

/** The fixture decoded, edited by `edit`, encoded again. */
function edited(file: string, edit: (g: onnxProto.onnx.IGraphProto) => void): Uint8Array {
  const m = onnx.ModelProto.decode(readFileSync(file));
  edit(m.graph!);
  return onnx.ModelProto.encode(m).finish();
}

describe('ONNX import', () => {
  for (const backend of ['cpu', 'native'])
    for (const [name, file] of Object.entries(FIXTURES))
      it(`${name} (${backend}): onnxruntime's logits within 1e-4`, async () => {
        await tf.setBackend(backend);
        const bytes = readFileSync(file);
        const imp = importOnnx(bytes, { layout: 'nchw', file });
        assert.deepEqual(imp.inputShape, [28, 28, 1]);
        assert.equal(imp.numClasses, 10);
        const x = batch();
        const y = imp.model.predict(x) as tf.Tensor;
        const want = await ortLogits(bytes, x);
        const scale = Math.max(...Array.from(want, Math.abs));
        assert.ok(scale > 0.3, `logits of size ${scale} make 1e-4 a test`);
        const d = maxAbsDiff(y.dataSync(), want);
        assert.ok(d <= 1e-4, `max |diff| ${d}`);
        tf.dispose([x, y]);
        imp.model.dispose();
      });

  it('an NHWC graph (as Keras exports start: input, then a Transpose to NCHW) imports with layout nhwc', async () => {
    await tf.setBackend('native');
    const bytes = edited(FIXTURES.ops, (g) => {
      const input = g.input![0]!;
      const dims = input.type!.tensorType!.shape!.dim!;
      input.type!.tensorType!.shape!.dim = [dims[0]!, dims[2]!, dims[3]!, dims[1]!];
      const first = g.node!.filter((n) => n.input!.includes(input.name!));
      for (const n of first) n.input = n.input!.map((i) => (i === input.name ? 'nchw_input' : i));
      g.node!.unshift({
        name: '/to_nchw',
        opType: 'Transpose',
        input: [input.name!],
        output: ['nchw_input'],
        attribute: [{ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: [0, 3, 1, 2] }],
      });
    });
    const x = batch();
    const y = importOnnx(bytes, { layout: 'nhwc' }).model.predict(x) as tf.Tensor;
    const d = maxAbsDiff(y.dataSync(), await ortLogits(bytes, x, 'nhwc'));
    assert.ok(d <= 1e-4, `max |diff| ${d}`);
    tf.dispose([x, y]);
  });

  it('maps each op to the expected layers (depthwise, BN kept, NCHW flatten, bias-fused MatMul)', async () => {
    await tf.setBackend('native');
    const classes = (f: string) =>
      importOnnx(readFileSync(f), { layout: 'nchw' }).model.layers.map((l) => l.getClassName());
    const mb = classes(FIXTURES.mobilenetv2);
    assert.equal(mb.filter((c) => c === 'DepthwiseConv2D').length, 10);
    assert.equal(mb.filter((c) => c === 'BatchNormalization').length, 31);
    assert.equal(mb.filter((c) => c === 'ReLU').length, 21); // Clip(0, 6)
    const ops = classes(FIXTURES.ops);
    // The 3x3 map before fc1 is flattened channels first; the SE gate's [N, C] becomes [N, 1, 1, C].
    assert.equal(ops.filter((c) => c === 'Permute').length, 1);
    assert.equal(ops.filter((c) => c === 'Multiply').length, 1);
    // fc2 = MatMul + Add: one Dense with a bias.
    assert.equal(ops.filter((c) => c === 'Dense').length, 2);
    assert.ok(!ops.includes('Add') || ops.filter((c) => c === 'Add').length === 1);
  });

  it('is trainable: every weight gets a gradient, and the model prunes and exports to ONNX again', async () => {
    await tf.setBackend('native');
    const x = batch();
    // The imported fp32 models export back to ONNX with the original files' logits (before any
    // training step: a training-mode pass moves the BN running statistics).
    for (const f of [FIXTURES.mobilenetv2, FIXTURES.ops]) {
      const bytes = readFileSync(f);
      const again = exportOnnx(importOnnx(bytes, { layout: 'nchw' }).model);
      const d = maxAbsDiff(await ortLogits(again, x, 'nhwc'), await ortLogits(bytes, x));
      assert.ok(d <= 1e-4, `${f} re-exported: max |diff| ${d}`);
    }
    const { model } = importOnnx(readFileSync(FIXTURES.mobilenetv2), { layout: 'nchw' });
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5], 'int32'), 10);
    const { grads } = tf.variableGrads(() =>
      tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training: true }) as tf.Tensor),
    );
    const named = new Set(Object.keys(grads));
    for (const w of model.trainableWeights) {
      const g = grads[(w.read() as tf.Variable).name];
      assert.ok(g !== undefined && named.has((w.read() as tf.Variable).name), `${w.name}: no gradient`);
      assert.ok(tf.sum(tf.abs(g)).dataSync()[0]! > 0, `${w.name}: zero gradient`);
    }
    const pruned = pruneChannels(model, { fraction: 0.5, criterion: 'l1' });
    assert.ok(pruned.model.countParams() < 0.75 * model.countParams());
    const out = pruned.model.predict(x) as tf.Tensor;
    assert.deepEqual(out.shape, [N, 10]);
    tf.dispose([x, labels, out, ...Object.values(grads)]);
  });

  it('refuses what it cannot import, naming the node and op', async () => {
    await tf.setBackend('native');
    const fails = (
      bytes: Uint8Array,
      re: RegExp,
      opts: { layout: 'nchw' | 'nhwc'; inputShape?: [number, number, number] } = { layout: 'nchw' },
    ) =>
      assert.throws(
        () => importOnnx(bytes, { ...opts, file: 'model.onnx' }),
        (e: unknown) => e instanceof RetortError && re.test(e.message) && e.message.startsWith('model.onnx:'),
      );
    fails(new Uint8Array([1, 2, 3, 250, 251]), /not an ONNX model|no graph/);
    fails(
      edited(FIXTURES.ops, (g) => {
        g.node!.find((n) => n.opType === 'Sigmoid')!.opType = 'HardSwish';
      }),
      /node '\/Sigmoid' has op type HardSwish, which the importer does not support \(supported: Conv/,
    );
    // A padded MaxPool on an input that can be negative: zero padding would change its result.
    fails(
      edited(FIXTURES.ops, (g) => {
        const pool = g.node!.find((n) => n.opType === 'MaxPool')!;
        pool.attribute!.find((a) => a.name === 'pads')!.ints = [1, 1, 1, 1];
        g.node!.find((n) => n.output![0] === pool.input![0])!.opType = 'Tanh';
      }),
      /node '\/MaxPool' \(MaxPool\) pads an input that can be negative/,
    );
    // The same padded MaxPool after its ReLU passes (zero padding is exact there); its larger output
    // then fails where it meets the other branch, as one error naming that node.
    const padded = edited(FIXTURES.ops, (g) => {
      g.node!.find((n) => n.opType === 'MaxPool')!.attribute!.find((a) => a.name === 'pads')!.ints = [
        1, 1, 1, 1,
      ];
    });
    fails(
      padded,
      /node '\/Add' \(Add\): Operands could not be broadcast together with shapes \[8,8,16\] \[7,7,16\]/,
    );
    // Reading an NCHW file as NHWC: its [N, 1, 28, 28] input would be 1 pixel high.
    fails(readFileSync(FIXTURES.resnet20), /input 'input' has height 1, the data 28/, {
      layout: 'nhwc',
      inputShape: [28, 28, 1],
    });
    fails(
      edited(FIXTURES.resnet20, (g) => {
        g.output!.push({ ...g.output![0]!, name: '/Flatten_output_0' });
      }),
      /expected one output \(the logits\), found 2/,
    );
  });
});
