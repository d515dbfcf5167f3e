/** A tfjs-layers model in this process as a teacher (zoo models, user code, tfjs folders). */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { tapModel } from '../taps/taps.js';
import { topologyDigest, weightsDigest } from './digest.js';
import type { Teacher, TeacherView } from './types.js';

export interface LayersTeacherOptions {
  description?: string;
  /** Maps the student's batch to this model's input (see preprocess.ts); identity by default. */
  adapt?: ((x: tf.Tensor) => tf.Tensor) | undefined;
  /** Part of the cache identity describing `adapt`. */
  adaptKey?: string;
}

/** `model` as a frozen teacher; `model.trainable` is set to false. */
export function layersTeacher(model: tfl.LayersModel, opts: LayersTeacherOptions = {}): Teacher {
  model.trainable = false;
  let digest: string | undefined;
  return {
    description: opts.description ?? `tfjs model ${model.name}`,
    numClasses: model.outputs[0]!.shape.at(-1) as number,
    params: model.countParams(),
    identity() {
      // Weights and architecture: two models with the same weight shapes can still differ in layers.
      digest ??= weightsDigest(model) + topologyDigest(model) + (opts.adaptKey ?? '');
      return digest;
    },
    tap(taps): TeacherView {
      const view = tapModel(model, taps);
      return {
        shapes: view.shapes,
        run: (x) =>
          tf.tidy(() => {
            const r = view.run(opts.adapt ? opts.adapt(x) : x, false);
            return { logits: r.logits, features: r.features };
          }),
      };
    },
    ...(opts.adapt ? {} : { model }),
    dispose: () => model.dispose(),
  };
}

/** Whether `t` is a Teacher rather than a tfjs model (both are accepted where a teacher goes). */
export function isTeacher(t: Teacher | tfl.LayersModel): t is Teacher {
  return typeof (t as Teacher).tap === 'function' && typeof (t as Teacher).identity === 'function';
}

/** A Teacher for either. */
export function asTeacher(t: Teacher | tfl.LayersModel): Teacher {
  return isTeacher(t) ? t : layersTeacher(t);
}
