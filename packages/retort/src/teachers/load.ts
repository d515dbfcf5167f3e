/** The teacher an experiment's `teacher` section names, loaded and checked against the data. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { TeacherConfig } from '../config/experiment.js';
import { runFolder } from '../config/paths.js';
import type { Loader } from '../data/loader.js';
import { buildConfiguredModel, modelLabel } from '../models/configured.js';
import { loadStateDict } from '../models/pytorch/state-dict.js';
import { loadModelWeights } from '../train/checkpoint.js';
import { RetortError } from '../util/errors.js';
import { layersTeacher } from './layers.js';
import { onnxTeacher } from './onnx.js';
import { type DataInput, inputAdapter } from './preprocess.js';
import { tfjsTeacher } from './tfjs.js';
import type { Teacher } from './types.js';

export interface TeacherData extends DataInput {
  shape: [number, number, number];
  numClasses: number;
}

/**
 * Loads the teacher: a zoo model with the weights of a run (a bare run name is a folder under
 * `runsRoot`) or a checkpoint, an ONNX file or a tfjs model. `taps` are the teacher taps every
 * loss of the run will ask for (an ONNX teacher binds them as extra graph outputs now).
 */
export async function loadTeacherSource(
  t: TeacherConfig,
  data: TeacherData,
  opts: { runsRoot?: string; taps?: readonly string[] } = {},
): Promise<Teacher> {
  let teacher: Teacher;
  if (t.onnx !== undefined) {
    teacher = await onnxTeacher(
      {
        path: t.onnx,
        layout: t.layout ?? 'nchw',
        taps: t.taps,
        inputSize: t.inputSize,
        channels: t.channels,
        mean: t.mean,
        std: t.std,
      },
      data,
      opts.taps ?? [],
      'teacher',
    );
  } else if (t.tfjs !== undefined) {
    teacher = await tfjsTeacher(
      { path: t.tfjs, taps: t.taps, inputSize: t.inputSize, channels: t.channels, mean: t.mean, std: t.std },
      data,
      'teacher',
      opts.taps ?? [],
    );
  } else {
    const m = t.model!;
    const given = [t.run, t.checkpoint, t.stateDict].filter((x) => x !== undefined).length;
    if (given !== 1)
      throw new RetortError(
        'teacher: give one of run (a run of `retort train`), checkpoint (a file) or stateDict (a PyTorch .pt)',
      );
    if (t.stateDict !== undefined) {
      // Built for the teacher's own input; the student's batches are adapted to it.
      const own = { inputShape: teacherShape(t, data), numClasses: data.numClasses };
      const pt = await buildConfiguredModel(m, own);
      let a: ReturnType<typeof inputAdapter>;
      try {
        loadStateDict(pt, t.stateDict);
        a = inputAdapter(data, t, 'teacher');
      } catch (e) {
        pt.dispose();
        throw e;
      }
      return checkClasses(
        layersTeacher(pt, {
          description: `${modelLabel(m)} from ${t.stateDict}`,
          adapt: a.adapt ?? undefined,
          adaptKey: a.key,
        }),
        data,
      );
    }
    const path = t.checkpoint ?? join(runFolder(t.run!, opts.runsRoot ?? 'runs'), 'model.ckpt');
    if (!existsSync(path))
      throw new RetortError(
        `teacher weights ${path} not found (train the teacher first: retort train <teacher config>)`,
      );
    const model = await buildConfiguredModel(m, { inputShape: data.shape, numClasses: data.numClasses });
    try {
      loadModelWeights(path, model);
    } catch (e) {
      model.dispose();
      throw e;
    }
    teacher = layersTeacher(model, { description: `${modelLabel(m)} from ${path}` });
  }
  return checkClasses(teacher, data);
}

/**
 * The data as the teacher sees it: with paired views, the shape of the teacher's view and the
 * normalisation of what it is made from (a stored view's own).
 */
export function teacherDataOf<
  D extends TeacherData & {
    teacherShape?: [number, number, number] | undefined;
    teacherMean?: number[] | undefined;
    teacherStd?: number[] | undefined;
  },
>(data: D): D {
  if (!data.teacherShape) return data;
  const norm = data.teacherMean && data.teacherStd ? { mean: data.teacherMean, std: data.teacherStd } : {};
  return { ...data, shape: data.teacherShape, ...norm };
}

/** [H, W, C] a stateDict teacher takes: its inputSize and channels, else the data's. */
function teacherShape(t: TeacherConfig, data: TeacherData): [number, number, number] {
  const [h, w, c] = data.shape;
  return [t.inputSize?.[0] ?? h, t.inputSize?.[1] ?? w, t.channels ?? c];
}

function checkClasses(teacher: Teacher, data: TeacherData): Teacher {
  if (teacher.numClasses !== data.numClasses) {
    teacher.dispose();
    throw new RetortError(
      `teacher: ${teacher.description} has ${teacher.numClasses} classes and the data ${data.numClasses}`,
    );
  }
  return teacher;
}

/** Top-1 accuracy (%) of a teacher on `loader`'s images, in inference mode. */
export async function teacherTop1(
  teacher: Teacher,
  loader: Loader,
  shape: readonly [number, number, number],
): Promise<number> {
  return (await teacherPredictions(teacher, loader, shape)).top1;
}

/** The teacher's test top-1 and each item's top-1 class, in the loader's order. */
export async function teacherPredictions(
  teacher: Teacher,
  loader: Loader,
  shape: readonly [number, number, number],
): Promise<{ top1: number; predicted: Int32Array }> {
  const view = teacher.tap([]);
  let correct = 0;
  let n = 0;
  const all: number[] = [];
  for await (const b of loader.epoch()) {
    // With paired views the teacher is scored on its own view of the test images.
    const x = b.teacherX ? tf.tensor(b.teacherX, [b.n, ...b.teacherShape!]) : tf.tensor(b.x, [b.n, ...shape]);
    let pred: Int32Array;
    try {
      const r = await view.run(x);
      const am = tf.argMax(r.logits, 1);
      pred = (await am.data()) as Int32Array;
      tf.dispose([am, r.logits, ...r.features]);
    } finally {
      x.dispose();
    }
    for (let i = 0; i < b.n; i++) {
      if (pred[i] === b.y[i]) correct++;
      all.push(pred[i]!);
    }
    n += b.n;
  }
  return { top1: n === 0 ? 0 : (100 * correct) / n, predicted: Int32Array.from(all) };
}
