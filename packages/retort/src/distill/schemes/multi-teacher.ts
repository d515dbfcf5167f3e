/**
 * Multi-teacher distillation: several frozen teachers, of any families and sources (zoo runs, ONNX,
 * tfjs), each with its own on-disk cache.
 *
 * - Logit knowledge: the teachers' softened distributions are mixed per example,
 *   p(x) = sum_m w_m(x) softmax(t_m(x) / T), and every logit loss of the experiment (kd, dkd, ...)
 *   sees the mixture as its teacher (given as logits T log p(x), whose softmax at temperature T is p).
 *   Weights: 'average' (1/M; You, Xu, Xu, Tao, KDD 2017 average the teachers' soft targets), 'fixed'
 *   (scheme.weights, normalised), or per example from each teacher's confidence, a softmax over
 *   teachers of minus its entropy ('entropy', as entropy-based adaptive KD, Kwon et al., ICASSP 2020)
 *   or of minus its cross-entropy against the label ('ce', as CA-MKD, Zhang, Chen, Wang, ICASSP 2022).
 *   Or dynamic selection: one teacher drawn at random per step ('random-batch', as Fukuda et al.,
 *   Interspeech 2017, switch teachers per mini-batch) or per example ('random-sample'), uniformly;
 *   the draw is a hash of (seed, epoch, dataset index), so it needs no state and resumes exactly.
 * - Feature knowledge: each feature loss is instantiated once per teacher, with its own trainable
 *   connector (parts) and the teacher's layer for each role (`scheme.roles[m]`, default the entry's
 *   taps.teacher), weighted by that teacher's mean weight over the batch.
 *
 * The experiment names no `teacher`: the scheme's `teachers` list replaces it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { teacherSchema } from '../../config/experiment.js';
import { BatchLoader } from '../../data/loader.js';
import { tapModel } from '../../taps/taps.js';
import { loadTeacherSource, teacherDataOf, teacherTop1 } from '../../teachers/load.js';
import type { Teacher, TeacherView } from '../../teachers/types.js';
import type { StepInput, TrainTask } from '../../train/trainer.js';
import { RetortError } from '../../util/errors.js';
import { hash32 } from '../../util/rng.js';
import type { NetOutputs, Parts } from '../losses/types.js';
import { cacheRefusal, TeacherCache } from '../teacher-cache.js';
import { fitSingleStage, needsTeacher, requireOneStage, type Term } from './offline.js';
import type { SchemeDescriptor } from './types.js';

export const multiTeacherSchema = z.strictObject({
  /** Two or more teachers, each as the experiment's `teacher` section. */
  teachers: z.array(teacherSchema).min(2),
  /** How the teachers' distributions are mixed per example. */
  weighting: z
    .enum(['average', 'fixed', 'entropy', 'ce', 'random-batch', 'random-sample'])
    .default('average'),
  /** 'fixed': one non-negative weight per teacher (normalised to sum 1). */
  weights: z.array(z.number().min(0)).optional(),
  /**
   * 'entropy', 'ce': temperature of the softmax over teachers; below 1 favours the more confident
   * teacher more strongly (near 0: the most confident one alone).
   */
  tau: z.number().positive().default(1),
  /** Temperature at which the distributions are mixed (give logit losses the same T). */
  T: z.number().positive().default(4),
  /** Per teacher: feature role -> that teacher's layer, for feature losses (default: the entry's taps.teacher). */
  roles: z.array(z.record(z.string(), z.string().min(1))).optional(),
});
export type MultiTeacherConfig = z.output<typeof multiTeacherSchema>;

/**
 * The teacher each example of a batch learns from under 'random-sample' (a draw per example) or
 * 'random-batch' (the draw of the batch's first example for all): uniform over the M teachers,
 * determined by (seed, epoch, dataset index).
 */
export function randomTeachers(
  weighting: 'random-batch' | 'random-sample',
  indices: Uint32Array,
  epoch: number,
  seed: number,
  m: number,
): Int32Array {
  const pick = (i: number) => hash32(seed, epoch, i) % m;
  if (weighting === 'random-batch') return new Int32Array(indices.length).fill(pick(indices[0] ?? 0));
  return Int32Array.from(indices, pick);
}

/**
 * Per-example teacher weights [N, M] (rows sum to 1) from the teachers' logits [N, K] each, the
 * labels for 'ce', and for 'random-*' the teacher drawn for each example (one-hot rows).
 * Constants: no gradient flows into them.
 */
export function teacherWeights(
  logits: readonly tf.Tensor2D[],
  labels: tf.Tensor1D,
  cfg: Pick<MultiTeacherConfig, 'weighting' | 'weights'> & { tau?: number },
  drawn?: Int32Array,
): tf.Tensor2D {
  const m = logits.length;
  const n = logits[0]!.shape[0];
  return tf.tidy(() => {
    if (cfg.weighting === 'average') return tf.fill([n, m], 1 / m) as tf.Tensor2D;
    if (cfg.weighting === 'random-batch' || cfg.weighting === 'random-sample') {
      if (drawn?.length !== n)
        throw new Error(
          `teacherWeights: weighting ${cfg.weighting} needs the drawn teacher of each of the ${n} examples`,
        );
      return tf.cast(tf.oneHot(tf.tensor1d(drawn, 'int32'), m), 'float32') as tf.Tensor2D;
    }
    if (cfg.weighting === 'fixed') {
      const w = cfg.weights!;
      const sum = w.reduce((a, b) => a + b, 0);
      return tf.tile(tf.tensor2d([w.map((v) => v / sum)]), [n, 1]) as tf.Tensor2D;
    }
    const scores = logits.map((t) => {
      const logP = tf.logSoftmax(t);
      if (cfg.weighting === 'entropy') return tf.sum(tf.mul(tf.exp(logP), logP), 1); // -H
      const k = t.shape[1];
      return tf.sum(tf.mul(tf.oneHot(labels, k), logP), 1); // -CE
    });
    return tf.softmax(tf.div(tf.stack(scores, 1), cfg.tau ?? 1)) as tf.Tensor2D;
  });
}

/** T log(sum_m w_m softmax(t_m / T)): logits whose softmax at temperature T is the mixture. */
export function mixtureLogits(logits: readonly tf.Tensor2D[], weights: tf.Tensor2D, T: number): tf.Tensor2D {
  return tf.tidy(() => {
    // log-sum-exp over teachers of log w_m + log softmax(t_m / T): stable for confident teachers;
    // a zero weight (a teacher not drawn) is a -Infinity term, which adds exp(-Infinity) = 0.
    const terms = logits.map((t, i) =>
      tf.add(tf.logSoftmax(tf.div(t, T)), tf.log(tf.slice(weights, [0, i], [-1, 1]))),
    );
    return tf.mul(tf.logSumExp(tf.stack(terms, 0), 0), T) as tf.Tensor2D;
  });
}

export const multiTeacher: SchemeDescriptor<MultiTeacherConfig> = {
  name: 'multi-teacher',
  schema: multiTeacherSchema,
  teacher: 'none',
  check(exp, cfg, stages, where) {
    requireOneStage(exp, 'multi-teacher', where);
    if (cfg.weighting === 'fixed' && cfg.weights?.length !== cfg.teachers.length)
      throw new RetortError(
        `${where}: scheme.weights: weighting 'fixed' needs one weight per teacher (${cfg.teachers.length}), got ${cfg.weights?.length ?? 'none'}`,
      );
    if (cfg.weighting === 'fixed' && !cfg.weights!.some((v) => v > 0))
      throw new RetortError(`${where}: scheme.weights: at least one weight must be above 0`);
    if (cfg.weighting !== 'fixed' && cfg.weights !== undefined)
      throw new RetortError(`${where}: scheme.weights applies to weighting 'fixed' only`);
    if (cfg.roles !== undefined && cfg.roles.length !== cfg.teachers.length)
      throw new RetortError(
        `${where}: scheme.roles: one mapping per teacher (${cfg.teachers.length}), got ${cfg.roles.length}`,
      );
    if (!stages[0]!.terms.some(needsTeacher))
      throw new RetortError(
        `${where}: scheme multi-teacher: no loss uses a teacher (add kd, or a feature loss)`,
      );
  },
  async run(ctx) {
    const { exp, config, student, data, log } = ctx;
    const stage = ctx.stages[0]!;
    const M = config.teachers.length;
    const plainTerms = stage.terms.filter((t) => !needsTeacher(t));
    const logitTerms = stage.terms.filter(
      (t) => needsTeacher(t) && (t.descriptor.needs.taps?.teacher.length ?? 0) === 0,
    );
    const featTerms = stage.terms.filter((t) => (t.descriptor.needs.taps?.teacher.length ?? 0) > 0);
    // Feature terms per teacher, with that teacher's layer per role.
    const perTeacher: Term[][] = config.teachers.map((_, m) =>
      featTerms.map((t) => ({
        ...t,
        label: `${t.label}@t${m + 1}`,
        taps: {
          student: t.taps.student,
          teacher: Object.fromEntries(
            Object.entries(t.taps.teacher).map(([role, layer]) => [role, config.roles?.[m]?.[role] ?? layer]),
          ),
        },
      })),
    );
    const tLayers = perTeacher.map((terms) => [
      ...new Set(terms.flatMap((t) => Object.values(t.taps.teacher))),
    ]);
    const sLayers = [...new Set(stage.terms.flatMap((t) => Object.values(t.taps.student)))];
    const teachers: Teacher[] = [];
    const info: { source: string; params: number; testTop1: number }[] = [];
    try {
      for (const [m, src] of config.teachers.entries()) {
        const t = await loadTeacherSource(src, teacherDataOf(data), {
          runsRoot: ctx.runsRoot,
          taps: tLayers[m]!,
        });
        teachers.push(t);
        const top1 = await teacherTop1(t, data.test, data.shape);
        info.push({ source: src.model?.name ?? t.description, params: t.params ?? 0, testTop1: top1 });
        log(
          `teacher ${m + 1}: ${info[m]!.source}, ${info[m]!.params} params, test top-1 ${top1.toFixed(2)}%`,
        );
      }
      const views: TeacherView[] = teachers.map((t, m) => t.tap(tLayers[m]!));
      const caches: (TeacherCache | null)[] = [];
      for (const [m, t] of teachers.entries()) {
        const plain = data.trainPlain;
        const refusal = !exp.cacheTeacher
          ? 'off'
          : plain instanceof BatchLoader
            ? cacheRefusal(exp.data)
            : 'teacher outputs not cached: the training split is streamed';
        if (refusal !== null || !(plain instanceof BatchLoader)) {
          if (refusal !== 'off') log(refusal ?? '');
          caches.push(null);
          continue;
        }
        const c = await TeacherCache.build(t, plain, data.key, ctx.cacheDir, {
          view: views[m]!,
          layers: tLayers[m]!,
        });
        if (c.featureRefusal) log(c.featureRefusal);
        log(`teacher ${m + 1} outputs ${c.reused ? 'reused from' : 'cached in'} ${c.path}`);
        caches.push(c.covers(tLayers[m]!) ? c : null);
      }
      const sView = tapModel(student, sLayers);
      const shapeOf = (layer: string, m: number | null) =>
        m === null ? sView.shapes[sLayers.indexOf(layer)]! : views[m]!.shapes[tLayers[m]!.indexOf(layer)]!;
      const partsOf = new Map<string, Parts>();
      for (const [m, terms] of perTeacher.entries())
        for (const t of terms) {
          if (!t.descriptor.parts) continue;
          const shapes = {
            student: Object.fromEntries(
              Object.entries(t.taps.student).map(([r, l]) => [r, shapeOf(l, null)]),
            ),
            teacher: Object.fromEntries(Object.entries(t.taps.teacher).map(([r, l]) => [r, shapeOf(l, m)])),
          };
          partsOf.set(t.label, t.descriptor.parts(shapes, t.config, ctx.dataInfo));
        }
      let outs: { logits: tf.Tensor2D; features: tf.Tensor[] }[] = [];
      const feats = (t: Term, side: 'student' | 'teacher', fs: tf.Tensor[], layers: string[]) =>
        Object.fromEntries(Object.entries(t.taps[side]).map(([r, l]) => [r, fs[layers.indexOf(l)]!]));
      const task: TrainTask = {
        model: student,
        parts: [...partsOf.values()].flatMap((p) => Object.values(p)),
        async prepare(input: StepInput) {
          outs = [];
          for (const [m, v] of views.entries()) {
            const c = caches[m];
            if (c)
              outs.push({
                logits: c.lookup(input.index),
                features: c.lookupFeatures(input.index, tLayers[m]!),
              });
            else outs.push(await v.run(input.teacherX ?? input.x));
          }
        },
        release() {
          for (const o of outs) tf.dispose([o.logits, ...o.features]);
          outs = [];
        },
        loss(input: StepInput) {
          const s = sView.run(input.x, true);
          const w = teacherWeights(
            outs.map((o) => o.logits),
            input.y,
            config,
            config.weighting === 'random-batch' || config.weighting === 'random-sample'
              ? randomTeachers(config.weighting, input.index, input.epoch, exp.seed, M)
              : undefined,
          );
          const mix = mixtureLogits(
            outs.map((o) => o.logits),
            w,
            config.T,
          );
          const meanW = tf.mean(w, 0).dataSync();
          const terms: Record<string, tf.Scalar> = {};
          let total: tf.Scalar | undefined;
          const run = (t: Term, teacher: NetOutputs<string>, weight: number) => {
            const v = t.descriptor.loss({
              config: t.config,
              student: { logits: s.logits, features: feats(t, 'student', s.features, sLayers) },
              teacher,
              labels: input.y,
              epoch: input.epoch,
              indices: input.index,
              parts: partsOf.get(t.label) ?? {},
            });
            terms[t.label] = v;
            const wv = tf.mul(v, t.weight * weight) as tf.Scalar;
            total = total === undefined ? wv : (tf.add(total, wv) as tf.Scalar);
          };
          for (const t of plainTerms) run(t, { logits: s.logits, features: {} }, 1);
          for (const t of logitTerms) run(t, { logits: mix, features: {} }, 1);
          for (const [m, ts] of perTeacher.entries())
            for (const t of ts)
              run(
                t,
                { logits: outs[m]!.logits, features: feats(t, 'teacher', outs[m]!.features, tLayers[m]!) },
                meanW[m]!,
              );
          return { total: total!, terms, logits: s.logits };
        },
      };
      log(
        `scheme multi-teacher: ${M} teachers, weighting ${config.weighting}, mixed at T ${config.T}; losses ${stage.terms.map((t) => `${t.weight}*${t.label}`).join(' + ')}`,
      );
      const { records, seconds } = await fitSingleStage(ctx, task);
      return {
        stages: [
          {
            name: stage.name,
            epochs: stage.epochs,
            losses: [...plainTerms, ...logitTerms, ...perTeacher.flat()].map((t) => t.label),
            seconds,
          },
        ],
        records,
        extra: { teachers: info, weighting: config.weighting },
      };
    } finally {
      for (const t of teachers) t.dispose();
    }
  },
};
