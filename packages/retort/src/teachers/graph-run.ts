/**
 * What the graph teachers (ONNX in onnxruntime, tfjs graph models) share: a graph that computes named
 * tensors for an image batch is run in chunks of the batch size its file fixes, probed once for the
 * number of classes and the shape of every bound tap, and bound to tap names for a training step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { RetortError } from '../util/errors.js';
import type { TeacherView } from './types.js';

/**
 * Runs the graph on one chunk `feed` [chunk, H, W, C] (NHWC, already adapted to the teacher's
 * input) and returns the tensors `names` in that order, NHWC, owned by the caller.
 */
export type GraphStep = (feed: tf.Tensor4D, names: readonly string[]) => Promise<tf.Tensor[]>;

/** Logits and the tensors `fetch` names for a student batch, in that order (NHWC). */
export type GraphRun = (x: tf.Tensor, fetch: readonly string[]) => Promise<tf.Tensor[]>;

export function chunkedRun(o: {
  /** The batch size the file fixes, or null when it is open. */
  fixedBatch: number | null;
  /** [H, W, C] the graph takes. */
  shape: readonly [number, number, number];
  /** The student batch -> the teacher's input, or null for none. */
  adapt: ((x: tf.Tensor) => tf.Tensor) | null;
  logits: string;
  step: GraphStep;
}): GraphRun {
  const [sh, sw, sc] = o.shape;
  return async (x, fetch) => {
    // Each tensor is fetched once (a tap may name the logits, two aliases one tensor): a graph
    // returning one tensor twice would have it freed twice.
    const asked = [o.logits, ...fetch];
    const names = [...new Set(asked)];
    const n = x.shape[0]!;
    const chunk = o.fixedBatch ?? n;
    const parts: tf.Tensor[][] = [];
    try {
      for (let s = 0; s < n; s += chunk) {
        const m = Math.min(chunk, n - s);
        const feed = tf.tidy(() => {
          let y = tf.slice(x, s, m) as tf.Tensor4D;
          if (o.adapt) y = o.adapt(y) as tf.Tensor4D;
          if (m < chunk) y = tf.concat([y, tf.zeros([chunk - m, sh, sw, sc])]);
          return y;
        });
        let out: tf.Tensor[];
        try {
          out = await o.step(feed, names);
        } finally {
          feed.dispose();
        }
        // A short last chunk was padded to the fixed batch: its padding rows are dropped.
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
    // Back to the order asked for; a tensor asked for twice is cloned so each result is its own.
    const used = new Set<number>();
    return asked.map((name) => {
      const i = names.indexOf(name);
      if (used.has(i)) return tf.clone(joined[i]!);
      used.add(i);
      return joined[i]!;
    });
  };
}

/**
 * One probe batch of zeros: the number of classes (the logits must be [N, K]) and the per-example
 * shape of every tensor in `wanted`. `what` names the logits in messages; any other failure of the
 * graph becomes one RetortError starting with `failed` ("ONNX teacher x.onnx: onnxruntime failed").
 */
export async function probeGraph(
  run: GraphRun,
  dataShape: readonly number[],
  wanted: readonly string[],
  where: string,
  what: string,
  failed: string,
): Promise<{ numClasses: number; shapeOf: Map<string, number[]> }> {
  const zeros = tf.zeros([1, ...dataShape]);
  try {
    const probe = await run(zeros, wanted);
    const logitsShape = probe[0]!.shape;
    const shapes = probe.map((t) => t.shape.slice(1));
    tf.dispose(probe);
    if (logitsShape.length !== 2)
      throw new RetortError(
        `${where}: ${what} has shape [${logitsShape.join(', ')}], expected logits [N, K]`,
      );
    return {
      numClasses: logitsShape[1]!,
      shapeOf: new Map(wanted.map((name, i) => [name, shapes[i + 1]!])),
    };
  } catch (e) {
    if (e instanceof RetortError) throw e;
    throw new RetortError(`${failed} on a probe batch: ${(e as Error).message}`);
  } finally {
    zeros.dispose();
  }
}

/** The teacher's `tap`: names (aliases resolved) bound at load, run through `run`. */
export function graphTap(
  run: GraphRun,
  shapeOf: ReadonlyMap<string, number[]>,
  resolveName: (t: string) => string,
  where: string,
  kind: string,
): (list: readonly string[]) => TeacherView {
  return (list) => {
    const names = list.map((t) => {
      const name = resolveName(t);
      if (!shapeOf.has(name))
        throw new RetortError(`${where}: tap '${t}' was not bound when the ${kind} was loaded`);
      return name;
    });
    return {
      shapes: names.map((n) => shapeOf.get(n)!),
      async run(x) {
        const [logits, ...features] = await run(x, names);
        return { logits: logits as tf.Tensor2D, features };
      },
    };
  };
}
