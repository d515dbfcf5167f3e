/**
 * An ONNX file as a teacher, run by onnxruntime-node: typically a model trained in PyTorch and
 * exported with torch.onnx.export. Feature methods need intermediate tensors, which an exported
 * graph computes but does not return: the tensors named as taps become extra graph outputs (the
 * graph is edited in memory; the file is never written). Maps come out NCHW from PyTorch and are
 * transposed to NHWC, the layout of the student's features.
 *
 * Tap names are tensor names of the graph (as Netron shows them, e.g. '/layer2/layer2.2/relu_1/Relu_output_0')
 * or aliases given in the teacher's `taps` map ({stage2: '/layer2/...'}); an unknown name fails and
 * lists the graph's Relu/Add/Flatten outputs, the usual feature points.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import type { onnx as O } from 'onnx-proto';
import onnxProto from 'onnx-proto';
import { RetortError } from '../util/errors.js';
import { loadOrt, type Ort } from '../util/ort.js';
import { readFileBounded } from '../util/read.js';
import { chunkedRun, graphTap, probeGraph } from './graph-run.js';
import { type DataInput, fixedInput, inputAdapter, type TeacherInput } from './preprocess.js';
import type { Teacher } from './types.js';

const { onnx } = onnxProto;
const MAX_BYTES = 2 ** 31 - 1;

export interface OnnxTeacherConfig extends TeacherInput {
  /** The .onnx file. */
  path: string;
  /** Layout of the model's image input: 'nchw' (PyTorch) or 'nhwc' (TensorFlow). */
  layout: 'nchw' | 'nhwc';
  /** Aliases for tensor names: {role or short name: tensor name}. */
  taps?: Readonly<Record<string, string>> | undefined;
}

type Session = Awaited<ReturnType<Ort['InferenceSession']['create']>>;

/**
 * Loads `cfg.path` and binds every tap the run will ask for (`taps`, names or aliases), so that
 * their shapes are known before training starts (a regressor's size depends on them).
 */
export async function onnxTeacher(
  cfg: OnnxTeacherConfig,
  data: DataInput,
  taps: readonly string[],
  where = 'teacher',
): Promise<Teacher> {
  const bytes = readFileBounded(cfg.path, MAX_BYTES, 'ONNX teacher');
  let model: O.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new RetortError(`ONNX teacher ${cfg.path}: not an ONNX model (${(e as Error).message})`, {
      file: cfg.path,
    });
  }
  const graph = model.graph;
  if (!graph || (graph.output ?? []).length === 0)
    throw new RetortError(`ONNX teacher ${cfg.path}: the file holds no graph with outputs`, {
      file: cfg.path,
    });
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((i) => !inits.has(i.name ?? ''));
  if (inputs.length !== 1)
    throw new RetortError(
      `ONNX teacher ${cfg.path}: expected one image input, found ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`,
      { file: cfg.path },
    );
  const input = inputs[0]!;
  const dims = (input.type?.tensorType?.shape?.dim ?? []).map((d) =>
    d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0 ? Number(d.dimValue) : null,
  );
  if (dims.length !== 4)
    throw new RetortError(
      `ONNX teacher ${cfg.path}: input '${input.name}' has rank ${dims.length}, expected an image batch of rank 4`,
    );
  const [b, d1, d2, d3] = dims;
  const [fh, fw, fc] = cfg.layout === 'nchw' ? [d2, d3, d1] : [d1, d2, d3];
  const adapter = inputAdapter(
    data,
    fixedInput([fh ?? null, fw ?? null, fc ?? null], cfg, `${cfg.path} (layout ${cfg.layout})`, where),
    where,
  );
  const fixedBatch = b ?? null;

  // Resolve tap names and add them as graph outputs.
  const produced = new Set((graph.node ?? []).flatMap((n) => n.output ?? []));
  const resolveName = (t: string) => cfg.taps?.[t] ?? t;
  const wanted = [...new Set([...taps, ...Object.keys(cfg.taps ?? {})].map(resolveName))];
  for (const name of wanted) {
    if (!produced.has(name)) {
      const hints = (graph.node ?? [])
        .filter((n) => ['Relu', 'Add', 'Flatten', 'GlobalAveragePool'].includes(n.opType ?? ''))
        .flatMap((n) => n.output ?? []);
      throw new RetortError(
        `${where}: tap '${name}' is not a tensor of ${cfg.path} (feature candidates: ${hints.slice(0, 40).join(', ')}${hints.length > 40 ? ', ...' : ''})`,
      );
    }
  }
  const logitsName = graph.output![0]!.name!;
  const have = new Set((graph.output ?? []).map((o) => o.name));
  for (const name of wanted)
    if (!have.has(name))
      graph.output!.push({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } });
  const ort = await loadOrt('an ONNX teacher');
  let session: Session;
  try {
    session = await ort.InferenceSession.create(onnx.ModelProto.encode(model).finish(), {
      graphOptimizationLevel: 'all',
    });
  } catch (e) {
    throw new RetortError(`ONNX teacher ${cfg.path}: onnxruntime cannot load it: ${(e as Error).message}`, {
      file: cfg.path,
    });
  }
  /**
   * The session on one chunk: only the tensors a view asks for are copied out of onnxruntime and
   * transposed to NHWC, not every bound tap.
   */
  const runAll = chunkedRun({
    fixedBatch,
    shape: adapter.shape,
    adapt: adapter.adapt,
    logits: logitsName,
    async step(feed, names) {
      const nchw = cfg.layout === 'nchw' ? tf.transpose(feed, [0, 3, 1, 2]) : feed;
      const feedDims = nchw.shape;
      let data: Float32Array;
      try {
        data = (await nchw.data()) as Float32Array;
      } finally {
        if (nchw !== feed) nchw.dispose();
      }
      const res = await session.run({ [input.name!]: new ort.Tensor('float32', data, feedDims) }, [...names]);
      return names.map((name) => {
        const t = res[name]!;
        const shape = t.dims.map(Number);
        return tf.tidy(() => {
          const v = tf.tensor(t.data as Float32Array, shape);
          return cfg.layout === 'nchw' && shape.length === 4 ? tf.transpose(v, [0, 2, 3, 1]) : v;
        });
      });
    },
  });

  // One probe batch gives the number of classes and every tap's shape.
  const { numClasses, shapeOf } = await probeGraph(
    runAll,
    data.shape,
    wanted,
    where,
    `output '${logitsName}' of ${cfg.path}`,
    `ONNX teacher ${cfg.path}: onnxruntime failed`,
  ).catch(async (e: unknown) => {
    await session.release().catch(() => {});
    throw e;
  });
  const params = (graph.initializer ?? []).reduce(
    (a, t) => a + (t.dims ?? []).reduce((x: number, d) => x * Number(d), 1),
    0,
  );
  const aliases = JSON.stringify(Object.entries(cfg.taps ?? {}).sort());
  const digest = createHash('sha256')
    .update(bytes)
    .update(adapter.key)
    .update(cfg.layout)
    .update(aliases)
    .digest('hex');
  return {
    description: `onnx ${cfg.path}`,
    numClasses,
    params,
    identity: () => digest,
    tap: graphTap(runAll, shapeOf, resolveName, where, 'ONNX teacher'),
    dispose: () => {
      session.release().catch(() => {});
    },
  };
}
