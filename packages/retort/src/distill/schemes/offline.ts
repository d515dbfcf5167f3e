/**
 * Offline distillation (Hinton et al. 2015; RepDistiller's train_student.py): a frozen teacher, and
 * the student trained on  sum_i weight_i * loss_i  over the configured terms (ce, kd, dkd, hint
 * losses, ...). Each term's descriptor declares what it needs — teacher logits, features tapped by
 * role, trainable parts — and this module serves the declarations; it never branches on a method.
 * The teacher runs outside the gradient tape, in inference mode (BN running statistics, no dropout),
 * or its logits (and tapped features, when they fit; teacher-cache.ts) come from the on-disk cache
 * when the inputs are not augmented.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { parseOrThrow } from '../../config/errors.js';
import type { Experiment, LossEntry } from '../../config/experiment.js';
import type { ExperimentData } from '../../data/build.js';
import { BatchLoader, type Loader } from '../../data/loader.js';
import { tapModel } from '../../taps/taps.js';
import { asTeacher } from '../../teachers/layers.js';
import type { Teacher, TeacherView } from '../../teachers/types.js';
import { makeOptimizer, makeSchedule } from '../../train/from-config.js';
import { type EpochRecord, fit, type StepInput, type TrainTask } from '../../train/trainer.js';
import { RetortError } from '../../util/errors.js';
import type { DataInfo, NetOutputs, Parts } from '../losses/types.js';
import { lossRegistry } from '../registry.js';
import { cacheRefusal, TeacherCache } from '../teacher-cache.js';
import type {
  ParsedStage,
  SchemeContext,
  SchemeDescriptor,
  SchemeOutput,
  TapBinding,
  Term,
} from './types.js';

export type { TapBinding, Term } from './types.js';

/** Validates loss entries: method names, method parameters (its schema) and tap bindings. */
export function parseTerms(entries: readonly LossEntry[], where: string): Term[] {
  const seen = new Map<string, number>();
  return entries.map((entry, i) => {
    const { name, weight, taps, ...params } = entry as LossEntry & { taps?: unknown };
    const descriptor = lossRegistry.get(name);
    const at = `${where}: losses[${i}] (${name})`;
    const config = parseOrThrow(descriptor.schema, params, at);
    const binding = parseBinding(taps, at);
    for (const side of ['student', 'teacher'] as const) {
      for (const role of descriptor.needs.taps?.[side] ?? []) {
        if (binding[side][role] === undefined) {
          throw new Error(
            `${at}: needs taps.${side}.${role}: the name of the ${side} layer that gives its '${role}' feature`,
          );
        }
      }
    }
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    return { label: n === 1 ? name : `${name}#${n}`, descriptor, config, weight, taps: binding };
  });
}

function parseBinding(taps: unknown, at: string): TapBinding {
  const out: TapBinding = { student: {}, teacher: {} };
  if (taps === undefined) return out;
  if (typeof taps !== 'object' || taps === null)
    throw new Error(`${at}: taps must be { student: {role: layer}, teacher: {role: layer} }`);
  for (const [side, roles] of Object.entries(taps)) {
    if (side !== 'student' && side !== 'teacher')
      throw new Error(`${at}: unknown key 'taps.${side}' (valid keys: student, teacher)`);
    for (const [role, layer] of Object.entries(roles as Record<string, unknown>)) {
      if (typeof layer !== 'string') throw new Error(`${at}: taps.${side}.${role} must be a layer name`);
      out[side][role] = layer;
    }
  }
  return out;
}

export interface OfflineTask extends TrainTask {
  /** Trainable parts by term label (kept out of the exported student). */
  partsByTerm: Record<string, Parts>;
  /** Whether the teacher runs at all. */
  usesTeacher: boolean;
  /** The teacher's tapped view and its tap layers (what a TeacherCache must hold to replace it). */
  teacherTaps?: { view: TeacherView; layers: readonly string[] } | undefined;
}

/** Builds the trainer's task for `student` distilled from a frozen `teacher` with `terms`. */
export function buildOfflineTask(opts: {
  student: tfl.LayersModel;
  /** A frozen teacher: any Teacher (teachers/), or a tfjs model. */
  teacher?: Teacher | tfl.LayersModel | undefined;
  terms: readonly Term[];
  cache?: TeacherCache | null | undefined;
  /** The training data, for methods whose parts depend on it (CRD's memory bank). */
  data?: DataInfo | undefined;
  /**
   * Parts already built by an earlier stage, by term label: a term with the same label reuses them
   * (a hint stage's regressor, FT's paraphraser) instead of starting from fresh weights.
   */
  existingParts?: Readonly<Record<string, Parts>> | undefined;
}): OfflineTask {
  const { student, terms } = opts;
  const teacher = opts.teacher ? asTeacher(opts.teacher) : undefined;
  const sLayers = unique(terms.flatMap((t) => Object.values(t.taps.student)));
  const tLayers = teacherLayersOf(terms);
  const usesTeacher = terms.some(needsTeacher);
  if (usesTeacher && teacher === undefined) {
    const who = terms.filter(needsTeacher).map((t) => t.label);
    throw new Error(`loss ${who.join(', ')} needs a teacher, and the experiment has none`);
  }
  const sView = tapModel(student, sLayers);
  const tView = teacher?.tap(tLayers);
  // A cache serves the step only when it holds every teacher tap (or none is needed).
  const cache = opts.cache?.covers(tLayers) ? opts.cache : null;

  const partsByTerm: Record<string, Parts> = {};
  for (const t of terms) {
    if (!t.descriptor.parts) continue;
    const existing = opts.existingParts?.[t.label];
    if (existing) {
      partsByTerm[t.label] = existing;
      continue;
    }
    const shapeOf = (side: 'student' | 'teacher') =>
      Object.fromEntries(
        Object.entries(t.taps[side]).map(([role, layer]) => {
          const view = side === 'student' ? sView : tView!;
          const layers = side === 'student' ? sLayers : tLayers;
          return [role, view.shapes[layers.indexOf(layer)]!];
        }),
      );
    if (opts.data === undefined)
      throw new Error(`loss ${t.label} builds trainable parts: buildOfflineTask needs the data info`);
    partsByTerm[t.label] = t.descriptor.parts(
      { student: shapeOf('student'), teacher: shapeOf('teacher') },
      t.config,
      opts.data,
    );
  }

  const featuresFor = (t: Term, side: 'student' | 'teacher', feats: tf.Tensor[]) => {
    const layers = side === 'student' ? sLayers : tLayers;
    return Object.fromEntries(
      Object.entries(t.taps[side]).map(([role, layer]) => [role, feats[layers.indexOf(layer)]!]),
    );
  };

  let teacherOut: { logits: tf.Tensor2D; features: tf.Tensor[] } | undefined;
  return {
    model: student,
    parts: Object.values(partsByTerm).flatMap((p) => Object.values(p)),
    partsByTerm,
    usesTeacher,
    teacherTaps: tView ? { view: tView, layers: tLayers } : undefined,
    prepare(input: StepInput): void | Promise<void> {
      if (!usesTeacher) return;
      if (cache) {
        teacherOut = {
          logits: cache.lookup(input.index),
          features: cache.lookupFeatures(input.index, tLayers),
        };
        return;
      }
      // A teacher in this process answers at once; one in onnxruntime answers with a promise.
      const r = tView!.run(input.teacherX ?? input.x);
      if (r instanceof Promise)
        return r.then((v) => {
          teacherOut = v;
        });
      teacherOut = r;
    },
    release() {
      if (teacherOut) tf.dispose([teacherOut.logits, ...teacherOut.features]);
      teacherOut = undefined;
    },
    loss(input: StepInput) {
      const s = sView.run(input.x, true);
      const terms: Record<string, tf.Scalar> = {};
      let total: tf.Scalar | undefined;
      for (const t of opts.terms) {
        const student: NetOutputs<string> = {
          logits: s.logits,
          features: featuresFor(t, 'student', s.features),
        };
        const teacherNet: NetOutputs<string> = teacherOut
          ? { logits: teacherOut.logits, features: featuresFor(t, 'teacher', teacherOut.features) }
          : { logits: s.logits, features: {} };
        const value = t.descriptor.loss({
          config: t.config,
          student,
          teacher: teacherNet,
          labels: input.y,
          epoch: input.epoch,
          indices: input.index,
          parts: partsByTerm[t.label] ?? {},
        });
        terms[t.label] = value;
        const weighted = tf.mul(value, t.weight) as tf.Scalar;
        total = total === undefined ? weighted : (tf.add(total, weighted) as tf.Scalar);
      }
      return { total: total ?? tf.scalar(0), terms, logits: s.logits };
    },
  };
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

/** The teacher layers `terms` tap, each once, in order of first use: what the task's teacher view taps. */
export function teacherLayersOf(terms: readonly Term[]): string[] {
  return unique(terms.flatMap((t) => Object.values(t.taps.teacher)));
}

/**
 * Why trainStages runs the teacher live instead of caching its outputs for `exp` whose plain
 * training loader is `plain` (augmented or streamed data), or null when it caches them.
 */
export function offlineCacheRefusal(exp: Experiment, plain: Loader): string | null {
  return plain instanceof BatchLoader
    ? cacheRefusal(exp.data)
    : 'teacher outputs not cached: the training split is streamed (no item numbers to key them by); the teacher runs on every batch';
}

/** Whether a term reads anything from a teacher (its logits or its features). */
export function needsTeacher(t: Term): boolean {
  return t.descriptor.needs.logits === true || (t.descriptor.needs.taps?.teacher.length ?? 0) > 0;
}

/** Where stage `si` of `n` keeps its checkpoints and metrics: the run folder itself for one stage. */
export function stageDir(runDir: string, stages: readonly ParsedStage[], si: number): string {
  return stages.length === 1 ? runDir : join(runDir, 'stages', `${si + 1}-${stages[si]!.name}`);
}

/**
 * Trains `student` through `stages` in `runDir`, distilled from `teacher` (cached on disk when the
 * data allows it): the offline scheme's whole work, and one generation of born-again.
 */
export async function trainStages(o: {
  exp: Experiment;
  student: tfl.LayersModel;
  teacher: Teacher | undefined;
  stages: readonly ParsedStage[];
  data: ExperimentData;
  dataInfo: DataInfo;
  runDir: string;
  resume: boolean;
  cacheDir: string;
  log: (line: string) => void;
  onEpoch?: ((r: EpochRecord, stage: string) => void) | undefined;
}): Promise<SchemeOutput> {
  const { exp, student, teacher, stages, data, log } = o;
  const results: SchemeOutput['stages'] = [];
  const records: EpochRecord[] = [];
  // Trainable parts by term label, carried from stage to stage.
  const parts: Record<string, Parts> = {};
  for (const [si, stage] of stages.entries()) {
    let cache: TeacherCache | null = null;
    const common = { student, teacher, terms: stage.terms, data: o.dataInfo, existingParts: parts };
    const task0 = buildOfflineTask(common);
    Object.assign(parts, task0.partsByTerm);
    if (teacher && task0.usesTeacher && exp.cacheTeacher) {
      const plain = data.trainPlain;
      const refusal = offlineCacheRefusal(exp, plain);
      if (refusal || !(plain instanceof BatchLoader)) log(refusal ?? '');
      else {
        cache = await TeacherCache.build(teacher, plain, data.key, o.cacheDir, task0.teacherTaps);
        if (cache.featureRefusal) log(cache.featureRefusal);
        const what = cache.layers.length > 0 ? `logits and features (${cache.layers.join(', ')})` : 'logits';
        log(`teacher ${what} ${cache.reused ? 'reused from' : 'cached in'} ${cache.path}`);
      }
    }
    const task = cache ? buildOfflineTask({ ...common, cache }) : task0;
    const optCfg = stage.optimizer ?? exp.optimizer;
    const schedCfg = stage.schedule ?? exp.schedule;
    const optimizer = makeOptimizer(optCfg);
    const s0 = performance.now();
    log(
      `stage ${stage.name}: ${stage.epochs} epochs, losses ${stage.terms.map((t) => `${t.weight}*${t.label}`).join(' + ')}`,
    );
    const dir = stageDir(o.runDir, stages, si);
    const recs = await fit(task, {
      epochs: stage.epochs,
      optimizer,
      schedule: makeSchedule(schedCfg, optCfg.lr, stage.epochs),
      train: data.train,
      val: data.val,
      valSplit: valSplitOf(data),
      runDir: dir,
      // A stage resumes when it left any checkpoint (last, or previous if last is damaged).
      resume: o.resume && ['last.ckpt', 'previous.ckpt'].some((f) => existsSync(join(dir, 'checkpoints', f))),
      log,
      ...(o.onEpoch ? { onEpoch: (r: EpochRecord) => o.onEpoch?.(r, stage.name) } : {}),
    });
    optimizer.dispose();
    records.push(...recs);
    results.push({
      name: stage.name,
      epochs: stage.epochs,
      losses: stage.terms.map((t) => t.label),
      seconds: (performance.now() - s0) / 1000,
    });
  }
  return { stages: results, records };
}

/** Which split the per-epoch evaluation reads: the held-out part, or the test split without one. */
export function valSplitOf(data: { val: unknown; test: unknown }): 'validation' | 'test' {
  return data.val === data.test ? 'test' : 'validation';
}

/** Refuses `stages` for a scheme that trains its task in one stage. */
/** Throws for a scheme that cannot serve paired views (data.views), saying why. */
export function refuseViews(
  ctx: { data: { teacherShape?: unknown }; where: string },
  scheme: string,
  why: string,
): void {
  if (ctx.data.teacherShape !== undefined)
    throw new RetortError(
      `${ctx.where}: scheme ${scheme} does not take data.views (${why}); use offline or multi-teacher for cross-modal distillation`,
    );
}

export function requireOneStage(exp: Experiment, scheme: string, where: string): void {
  if (exp.stages !== undefined)
    throw new RetortError(
      `${where}: scheme ${scheme} trains in one stage: give losses and epochs, not stages`,
    );
}

/**
 * Trains `task` for the experiment's single stage with its optimizer and schedule, in the run
 * folder (resuming when asked): what the schemes with one training task (dml, byot, multi-teacher)
 * share. Returns the epoch records and the seconds it took.
 */
export async function fitSingleStage(
  ctx: Pick<SchemeContext<unknown>, 'exp' | 'stages' | 'data' | 'runDir' | 'resume' | 'log' | 'onEpoch'>,
  task: TrainTask,
): Promise<{ records: EpochRecord[]; seconds: number }> {
  const { exp } = ctx;
  const epochs = ctx.stages[0]!.epochs;
  const optimizer = makeOptimizer(exp.optimizer);
  const s0 = performance.now();
  try {
    const records = await fit(task, {
      epochs,
      optimizer,
      schedule: makeSchedule(exp.schedule, exp.optimizer.lr, epochs),
      train: ctx.data.train,
      val: ctx.data.val,
      valSplit: valSplitOf(ctx.data),
      runDir: ctx.runDir,
      resume: ctx.resume,
      log: ctx.log,
      ...(ctx.onEpoch ? { onEpoch: (r: EpochRecord) => ctx.onEpoch?.(r, ctx.stages[0]!.name) } : {}),
    });
    return { records, seconds: (performance.now() - s0) / 1000 };
  } finally {
    optimizer.dispose();
  }
}

/** Offline distillation: the default scheme (a frozen teacher when the losses use one). */
export const offline: SchemeDescriptor<Record<string, never>> = {
  name: 'offline',
  paper: {
    title: 'Distilling the Knowledge in a Neural Network',
    authors: 'Hinton, Vinyals, Dean',
    venue: 'NeurIPS Deep Learning Workshop',
    year: 2015,
  },
  schema: z.strictObject({}),
  teacher: 'optional',
  run: (ctx) =>
    trainStages({
      exp: ctx.exp,
      student: ctx.student,
      teacher: ctx.teacher,
      stages: ctx.stages,
      data: ctx.data,
      dataInfo: ctx.dataInfo,
      runDir: ctx.runDir,
      resume: ctx.resume,
      cacheDir: ctx.cacheDir,
      log: ctx.log,
      onEpoch: ctx.onEpoch,
    }),
};
