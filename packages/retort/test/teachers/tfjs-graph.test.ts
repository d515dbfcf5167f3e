/**
 * A tfjs graph model as a teacher. The graph is written here in the format tensorflowjs_converter
 * writes for a TensorFlow model (a GraphDef as JSON: Placeholder, Const weights from the manifest,
 * Conv2D, BiasAdd, Relu, Mean, MatMul), with the weights of a tfjs-layers model of the same
 * architecture: the teacher's logits and its tapped Relu node equal the layers model's, the tap
 * works by alias and by node name, and unknown names list the graph's feature nodes.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { experimentSchema } from '../../src/config/experiment.js';
import { layersTeacher } from '../../src/teachers/layers.js';
import { loadTeacherSource } from '../../src/teachers/load.js';
import { tfjsTeacher } from '../../src/teachers/tfjs.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-graph-teacher-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const b64 = (s: string) => Buffer.from(s).toString('base64');
const f32 = { type: 'DT_FLOAT' };
const dimsOf = (shape: number[]) => ({ dim: shape.map((d) => ({ size: String(d) })) });
const constNode = (name: string, shape: number[], dtype = 'DT_FLOAT') => ({
  name,
  op: 'Const',
  attr: { dtype: { type: dtype }, value: { tensor: { dtype, tensorShape: dimsOf(shape) } } },
});

/** conv 3x3 (4 filters, same, ReLU) -> global mean -> dense 3, as a layers model and as a graph. */
function writeModels(dir: string) {
  const input = tfl.input({ shape: [8, 8, 1] });
  const conv = tfl.layers
    .conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv' })
    .apply(input);
  const pooled = tfl.layers.globalAveragePooling2d({}).apply(conv);
  const out = tfl.layers.dense({ units: 3, name: 'fc' }).apply(pooled) as tfl.SymbolicTensor;
  const layers = tfl.model({ inputs: input, outputs: out });
  const [ck, cb, fk, fb] = layers.getWeights();
  const weights: [string, tf.Tensor][] = [
    ['conv/kernel', ck!],
    ['conv/bias', cb!],
    ['pool/axes', tf.tensor1d([1, 2], 'int32')],
    ['fc/kernel', fk!],
    ['fc/bias', fb!],
  ];
  const node = [
    {
      name: 'image',
      op: 'Placeholder',
      attr: { dtype: f32, shape: { shape: dimsOf([-1, 8, 8, 1]) } },
    },
    ...weights.map(([n, t]) => constNode(n, t.shape, t.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT')),
    {
      name: 'conv/Conv2D',
      op: 'Conv2D',
      input: ['image', 'conv/kernel'],
      attr: {
        T: f32,
        strides: { list: { i: ['1', '1', '1', '1'] } },
        dilations: { list: { i: ['1', '1', '1', '1'] } },
        padding: { s: b64('SAME') },
        data_format: { s: b64('NHWC') },
      },
    },
    {
      name: 'conv/BiasAdd',
      op: 'BiasAdd',
      input: ['conv/Conv2D', 'conv/bias'],
      attr: { T: f32, data_format: { s: b64('NHWC') } },
    },
    { name: 'conv/Relu', op: 'Relu', input: ['conv/BiasAdd'], attr: { T: f32 } },
    {
      name: 'pool/Mean',
      op: 'Mean',
      input: ['conv/Relu', 'pool/axes'],
      attr: { T: f32, Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } },
    },
    {
      name: 'fc/MatMul',
      op: 'MatMul',
      input: ['pool/Mean', 'fc/kernel'],
      attr: { T: f32, transpose_a: { b: false }, transpose_b: { b: false } },
    },
    { name: 'logits', op: 'BiasAdd', input: ['fc/MatMul', 'fc/bias'], attr: { T: f32 } },
  ];
  const bytes = Buffer.concat(weights.map(([, t]) => Buffer.from(t.dataSync().buffer)));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'group1-shard1of1.bin'), bytes);
  writeFileSync(
    join(dir, 'model.json'),
    JSON.stringify({
      format: 'graph-model',
      generatedBy: 'retort test',
      convertedBy: 'hand',
      modelTopology: { node, library: {}, versions: { producer: 1 } },
      weightsManifest: [
        {
          paths: ['group1-shard1of1.bin'],
          weights: weights.map(([name, t]) => ({ name, shape: t.shape, dtype: t.dtype })),
        },
      ],
    }),
  );
  tf.dispose(weights[2]![1]);
  return layers;
}

const data = { shape: [8, 8, 1] as [number, number, number], mean: [0], std: [1], numClasses: 3 };

it("a graph model gives the layers model's logits and tapped node, by alias or node name", async () => {
  await tf.setBackend('native');
  const dir = join(scratch, 'g');
  const layers = writeModels(dir);
  const teacher = await tfjsTeacher(
    { path: join(dir, 'model.json'), taps: { feat: 'conv/Relu' } },
    data,
    'teacher',
    ['feat'],
  );
  assert.match(teacher.description, /tfjs graph/);
  assert.equal(teacher.numClasses, 3);
  assert.equal(teacher.params, layers.countParams() + 2); // + the two Mean axes
  const x = tf.randomNormal([5, 8, 8, 1], 0, 1, 'float32', 3);
  const view = teacher.tap(['feat']);
  assert.deepEqual(view.shapes, [[8, 8, 4]]);
  const got = await view.run(x);
  const want = layersTeacher(layers).tap(['conv']).run(x) as { logits: tf.Tensor2D; features: tf.Tensor[] };
  const diff = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!;
  assert.ok(diff(got.logits, want.logits) <= 1e-5, `logits differ by ${diff(got.logits, want.logits)}`);
  assert.deepEqual(got.features[0]!.shape, [5, 8, 8, 4]);
  assert.ok(diff(got.features[0]!, want.features[0]!) <= 1e-5);
  assert.ok(tf.max(want.logits).dataSync()[0]! !== 0, 'a non-trivial model');
  tf.dispose([got.logits, ...got.features, want.logits, ...want.features]);

  // Through the config: taps bound by node name, unknown ones refused with the feature nodes.
  const cfg = experimentSchema.shape.teacher.unwrap().parse({ tfjs: join(dir, 'model.json') });
  const byName = await loadTeacherSource(cfg, data, { taps: ['conv/Relu'] });
  const r = await byName.tap(['conv/Relu']).run(x);
  assert.deepEqual(r.features[0]!.shape, [5, 8, 8, 4]);
  tf.dispose([r.logits, ...r.features]);
  await assert.rejects(
    loadTeacherSource(cfg, data, { taps: ['conv/relu'] }),
    /tap 'conv\/relu' is not a node of .*model\.json \(feature candidates: conv\/Relu, pool\/Mean\)/,
  );
  assert.notEqual(byName.identity(), teacher.identity(), 'aliases are part of the identity');
  // A graph with a fixed batch of 4 runs 6 images in two chunks (the second padded); a tap may be
  // the output node itself.
  const j = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  j.modelTopology.node[0].attr.shape.shape = dimsOf([4, 8, 8, 1]);
  writeFileSync(join(dir, 'fixed.json'), JSON.stringify(j));
  const fixed = await loadTeacherSource(
    experimentSchema.shape.teacher.unwrap().parse({ tfjs: join(dir, 'fixed.json') }),
    data,
    { taps: ['logits'] },
  );
  const x6 = tf.slice(x, 0, 5);
  const rf = await fixed.tap(['logits']).run(tf.concat([x6, tf.slice(x, 0, 1)]));
  const want6 = layers.predict(tf.concat([x6, tf.slice(x, 0, 1)])) as tf.Tensor;
  assert.deepEqual(rf.logits.shape, [6, 3]);
  assert.ok(diff(rf.logits, want6) <= 1e-5);
  assert.ok(diff(rf.features[0]!, want6) <= 1e-5, 'the output node as a tap');
  tf.dispose([x6, rf.logits, ...rf.features, want6]);
  fixed.dispose();
  // A batch larger than the graph fixes is chunked only when the graph fixes one; here it is open.
  const big = tf.zeros([600, 8, 8, 1]);
  const rb = await teacher.tap([]).run(big);
  assert.deepEqual(rb.logits.shape, [600, 3]);
  tf.dispose([big, rb.logits, x]);
  teacher.dispose();
  byName.dispose();
  layers.dispose();
});

it('refuses a graph model whose input is not an image batch, or whose weights do not load', async () => {
  const dir = join(scratch, 'bad');
  writeModels(dir).dispose();
  const json = join(dir, 'model.json');
  const j = JSON.parse(readFileSync(json, 'utf8'));
  j.modelTopology.node[0].attr.shape.shape = dimsOf([-1, 64]);
  writeFileSync(join(dir, 'flat.json'), JSON.stringify(j));
  await assert.rejects(
    tfjsTeacher({ path: join(dir, 'flat.json') }, data),
    /input 'image' has rank 2, expected an NHWC image batch of rank 4/,
  );
  j.modelTopology.node[0].attr.shape.shape = dimsOf([-1, 8, 8, 1]);
  j.weightsManifest[0].weights.pop();
  writeFileSync(join(dir, 'short.json'), JSON.stringify(j));
  await assert.rejects(tfjsTeacher({ path: join(dir, 'short.json') }, data), /short\.json/);
});
