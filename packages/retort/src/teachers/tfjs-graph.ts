/**
 * A tfjs graph model (model.json with format 'graph-model', as tensorflowjs_converter writes for a
 * TensorFlow SavedModel or frozen graph) as a teacher, run by @tensorflow/tfjs-converter on the
 * current backend. Feature taps are node names of the graph ('StatefulPartitionedCall/model/
 * conv2d_3/Relu'), or aliases from the teacher's `taps` map; the executor returns any node's output
 * when asked, so nothing in the graph is edited. TensorFlow graphs are NHWC, the student's layout.
 */
import { createHash } from 'node:crypto';
import type * as tf from '@tensorflow/tfjs-core';
import { RetortError } from '../util/errors.js';
import { chunkedRun, graphTap, probeGraph } from './graph-run.js';
import { type DataInput, fixedInput, inputAdapter, type TeacherInput } from './preprocess.js';
import type { Teacher } from './types.js';

type GraphModel = ReturnType<typeof import('@tensorflow/tfjs-converter').loadGraphModelSync>;

interface GraphNode {
  name?: string;
  op?: string;
}

/** Ops whose outputs are the usual feature points, listed when a tap name is unknown. */
const FEATURE_OPS = new Set([
  'Relu',
  'Relu6',
  'AddV2',
  'Add',
  'Mean',
  'Reshape',
  'FusedBatchNormV3',
  '_FusedConv2D',
]);

export async function graphTeacher(
  cfg: TeacherInput & { path: string; taps?: Readonly<Record<string, string>> | undefined },
  artifacts: tf.io.ModelArtifacts & { modelTopology: object },
  data: DataInput,
  taps: readonly string[],
  where: string,
): Promise<Teacher> {
  const converter = await import('@tensorflow/tfjs-converter');
  let model: GraphModel;
  try {
    model = converter.loadGraphModelSync(artifacts);
  } catch (e) {
    throw new RetortError(`tfjs graph model ${cfg.path}: cannot load it: ${(e as Error).message}`, {
      file: cfg.path,
    });
  }
  try {
    return await bind(model);
  } catch (e) {
    model.dispose();
    throw e;
  }

  async function bind(model: GraphModel): Promise<Teacher> {
    if (model.inputs.length !== 1)
      throw new RetortError(
        `tfjs graph model ${cfg.path}: expected one image input, found ${model.inputs.length} (${model.inputs.map((i) => i.name).join(', ')})`,
        { file: cfg.path },
      );
    const input = model.inputs[0]!;
    const dims = (input.shape ?? []).map((d) => (d > 0 ? d : null));
    if (dims.length !== 4)
      throw new RetortError(
        `tfjs graph model ${cfg.path}: input '${input.name}' has rank ${dims.length}, expected an NHWC image batch of rank 4`,
      );
    const adapter = inputAdapter(
      data,
      fixedInput([dims[1] ?? null, dims[2] ?? null, dims[3] ?? null], cfg, cfg.path, where),
      where,
    );
    const fixedBatch = dims[0] ?? null;
    const nodes = (((artifacts.modelTopology as { node?: GraphNode[] }).node ?? []) as GraphNode[]).filter(
      (n) => typeof n.name === 'string',
    );
    const known = new Set(nodes.map((n) => n.name!));
    const resolveName = (t: string) => cfg.taps?.[t] ?? t;
    const wanted = [...new Set([...taps, ...Object.keys(cfg.taps ?? {})].map(resolveName))];
    for (const name of wanted) {
      if (!known.has(name.replace(/:0$/, ''))) {
        const hints = nodes.filter((n) => FEATURE_OPS.has(n.op ?? '')).map((n) => n.name!);
        throw new RetortError(
          `${where}: tap '${name}' is not a node of ${cfg.path} (feature candidates: ${hints.slice(0, 40).join(', ')}${hints.length > 40 ? ', ...' : ''})`,
        );
      }
    }
    const logitsName = model.outputNodes[0]!;
    const runAll = chunkedRun({
      fixedBatch,
      shape: adapter.shape,
      adapt: adapter.adapt,
      logits: logitsName,
      async step(feed, names) {
        const r = await model.executeAsync(feed, [...names]);
        return Array.isArray(r) ? r : [r];
      },
    });
    // One probe batch gives the number of classes and every tap's shape.
    const { numClasses, shapeOf } = await probeGraph(
      runAll,
      data.shape,
      wanted,
      where,
      `output '${logitsName}' of ${cfg.path}`,
      `tfjs graph model ${cfg.path}: failed`,
    );
    const params = (artifacts.weightSpecs ?? []).reduce((a, w) => a + w.shape.reduce((x, d) => x * d, 1), 0);
    const digest = createHash('sha256')
      .update(JSON.stringify(artifacts.modelTopology))
      .update(new Uint8Array(artifacts.weightData as ArrayBuffer))
      .update(adapter.key)
      .update(JSON.stringify(Object.entries(cfg.taps ?? {}).sort()))
      .digest('hex');
    return {
      description: `tfjs graph ${cfg.path}`,
      numClasses,
      params,
      identity: () => digest,
      tap: graphTap(runAll, shapeOf, resolveName, where, 'graph model'),
      dispose: () => model.dispose(),
    };
  }
}
