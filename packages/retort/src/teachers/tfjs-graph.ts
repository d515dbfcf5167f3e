/**
 * A tfjs graph model (model.json with format 'graph-model', as tensorflowjs_converter writes for a
 * TensorFlow SavedModel or frozen graph) as a teacher, run by @tensorflow/tfjs-converter on the
 * current backend. Feature taps are node names of the graph ('StatefulPartitionedCall/model/
 * conv2d_3/Relu'), or aliases from the teacher's `taps` map; the executor returns any node's output
 * when asked, so nothing in the graph is edited. TensorFlow graphs are NHWC, the student's layout.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import { RetortError } from '../util/errors.js';
import { type DataInput, fixedInput, inputAdapter, type TeacherInput } from './preprocess.js';
import type { Teacher, TeacherView } from './types.js';

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
    const [sh, sw, sc] = adapter.shape;

    /** Logits and the nodes `fetch` names for student batch `x`, in that order. */
    async function runAll(x: tf.Tensor, fetch: readonly string[]): Promise<tf.Tensor[]> {
      // Each node is fetched once (a tap may name the output node, or two aliases one node): the
      // executor would return the same tensor twice, and it would be freed twice.
      const names = [...new Set([logitsName, ...fetch])];
      const at = [logitsName, ...fetch].map((nm) => names.indexOf(nm));
      const n = x.shape[0]!;
      const chunk = fixedBatch ?? n;
      const parts: tf.Tensor[][] = [];
      try {
        for (let s = 0; s < n; s += chunk) {
          const m = Math.min(chunk, n - s);
          const feed = tf.tidy(() => {
            let y = tf.slice(x, s, m) as tf.Tensor4D;
            if (adapter.adapt) y = adapter.adapt(y) as tf.Tensor4D;
            if (m < chunk) y = tf.concat([y, tf.zeros([chunk - m, sh, sw, sc])]);
            return y;
          });
          let out: tf.Tensor[];
          try {
            const r = await model.executeAsync(feed, names);
            out = Array.isArray(r) ? r : [r];
          } finally {
            feed.dispose();
          }
          parts.push(
            m < chunk
              ? out.map((t) => {
                  const v = tf.slice(t, 0, m);
                  t.dispose();
                  return v;
                })
              : out,
          );
        }
      } catch (e) {
        tf.dispose(parts.flat());
        throw e;
      }
      let joined: tf.Tensor[];
      if (parts.length === 1) joined = parts[0]!;
      else {
        joined = parts[0]!.map((_, i) => tf.concat(parts.map((p) => p[i]!)));
        tf.dispose(parts.flat());
      }
      // Back to the order asked for; a node asked for twice is cloned so each result is its own.
      const used = new Set<number>();
      return at.map((i) => {
        if (used.has(i)) return tf.clone(joined[i]!);
        used.add(i);
        return joined[i]!;
      });
    }

    // One probe batch gives the number of classes and every tap's shape.
    const zeros = tf.zeros([1, ...data.shape]);
    let numClasses: number;
    let shapeOf: Map<string, number[]>;
    try {
      const probe = await runAll(zeros, wanted);
      const logitsShape = probe[0]!.shape;
      const shapes = probe.map((t) => t.shape.slice(1));
      tf.dispose(probe);
      if (logitsShape.length !== 2)
        throw new RetortError(
          `${where}: output '${logitsName}' of ${cfg.path} has shape [${logitsShape.join(', ')}], expected logits [N, K]`,
        );
      numClasses = logitsShape[1]!;
      shapeOf = new Map(wanted.map((name, i) => [name, shapes[i + 1]!]));
    } catch (e) {
      if (e instanceof RetortError) throw e;
      throw new RetortError(`tfjs graph model ${cfg.path}: failed on a probe batch: ${(e as Error).message}`);
    } finally {
      zeros.dispose();
    }
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
      tap(list): TeacherView {
        const names = list.map((t) => {
          const name = resolveName(t);
          if (!shapeOf.has(name))
            throw new RetortError(`${where}: tap '${t}' was not bound when the graph model was loaded`);
          return name;
        });
        return {
          shapes: names.map((n) => shapeOf.get(n)!),
          async run(x) {
            const [logits, ...features] = await runAll(x, names);
            return { logits: logits as tf.Tensor2D, features };
          },
        };
      },
      dispose: () => model.dispose(),
    };
  }
}
