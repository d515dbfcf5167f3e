/**
 * Online distillation: k >= 2 peers trained together from scratch, no frozen teacher.
 *
 * - target 'peers' — Deep Mutual Learning (Zhang, Xiang, Hospedales, Lu, CVPR 2018): peer i
 *   minimises its own losses (CE) plus the mean over the other peers j of KL(p_j || p_i) (eq. 10 of
 *   the paper for k peers). The paper updates the peers in turn; here all peers step together on the
 *   sum of their losses, with every target detached, which gives each peer exactly its own gradient
 *   (peer i's parameters appear in no other peer's loss except through detached targets).
 * - target 'ensemble' — an online ensemble teacher as in ONE (Lan, Zhu, Gong, NeurIPS 2018) and
 *   KDCL (Guo et al., CVPR 2020, its naive variant): every peer distils from the mean of all peers'
 *   logits, detached.
 *
 * The run's model is the first peer (`model`); the others are `scheme.peers` (any families; default
 * one more network like `model`). Each peer is saved as a run folder of its own under peers/, and the
 * peers' ensemble is measured on the test split.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { modelSchema } from '../../config/experiment.js';
import type { StepInput, TrainTask } from '../../train/trainer.js';
import { RetortError } from '../../util/errors.js';
import { kdLoss } from '../losses/kd.js';
import { buildOfflineTask, fitSingleStage, needsTeacher, requireOneStage } from './offline.js';
import { ensembleTop1, type SideRun, saveSideRun } from './outputs.js';
import type { SchemeDescriptor } from './types.js';

export const dmlSchema = z.strictObject({
  /** The other peers (any zoo or user models); default: one more network like `model`. */
  peers: z.array(modelSchema).min(1).optional(),
  /** 'peers': KL to each other peer (DML); 'ensemble': KL to the peers' mean logits (ONE/KDCL). */
  target: z.enum(['peers', 'ensemble']).default('peers'),
  /** Softmax temperature of the mutual term (DML uses 1; the term is scaled by T^2 as KD's). */
  T: z.number().positive().default(1),
  /** Weight of the mutual term beside each peer's own losses. */
  weight: z.number().min(0).default(1),
});
export type DmlConfig = z.output<typeof dmlSchema>;

/**
 * The mutual term of peer i: mean over j != i of KD(logits_i, logits_j) ('peers'), or KD to the
 * mean of all logits ('ensemble'). Targets are detached inside kdLoss.
 */
export function mutualLoss(logits: readonly tf.Tensor2D[], i: number, cfg: DmlConfig): tf.Scalar {
  return tf.tidy(() => {
    if (cfg.target === 'ensemble') {
      const mean = tf.div(tf.addN(logits as tf.Tensor2D[]), logits.length) as tf.Tensor2D;
      return kdLoss(logits[i]!, mean, { T: cfg.T });
    }
    const parts = logits.filter((_, j) => j !== i).map((t) => kdLoss(logits[i]!, t, { T: cfg.T }));
    return tf.div(tf.addN(parts), parts.length) as tf.Scalar;
  });
}

export const dml: SchemeDescriptor<DmlConfig> = {
  name: 'dml',
  paper: {
    title: 'Deep Mutual Learning',
    authors: 'Ying Zhang, Tao Xiang, Timothy M. Hospedales, Huchuan Lu',
    venue: 'CVPR',
    year: 2018,
  },
  schema: dmlSchema,
  teacher: 'none',
  check(exp, _cfg, stages, where) {
    requireOneStage(exp, 'dml', where);
    for (const t of stages[0]!.terms) {
      if (needsTeacher(t))
        throw new RetortError(
          `${where}: losses: ${t.label} needs a teacher; in scheme dml the peers teach each other (its mutual term), so each peer's own losses are teacher-free (ce, tf-kd)`,
        );
      if (Object.keys(t.taps.student).length > 0)
        throw new RetortError(
          `${where}: losses: ${t.label} taps student layers; peers of scheme dml may be of different families, so their own losses cannot tap layers`,
        );
    }
  },
  async run(ctx) {
    const { exp, config, log } = ctx;
    const peerCfgs = [exp.model, ...(config.peers ?? [exp.model])];
    const models: tfl.LayersModel[] = [ctx.student];
    for (const cfg of peerCfgs.slice(1)) models.push(await ctx.buildModel(cfg));
    const stage = ctx.stages[0]!;
    const tasks = models.map((m) =>
      buildOfflineTask({ student: m, teacher: undefined, terms: stage.terms, data: ctx.dataInfo }),
    );
    const labels = models.map((_, i) => `peer${i + 1}`);
    const task: TrainTask = {
      model: models[0]!,
      parts: [...models.slice(1), ...tasks.flatMap((t) => t.parts ?? [])],
      others: Object.fromEntries(models.slice(1).map((m, i) => [labels[i + 1]!, m])),
      loss(input: StepInput) {
        const outs = tasks.map((t) => t.loss(input));
        const logits = outs.map((o) => o.logits as tf.Tensor2D);
        const terms: Record<string, tf.Scalar> = {};
        let total: tf.Scalar | undefined;
        outs.forEach((o, i) => {
          for (const [k, v] of Object.entries(o.terms)) terms[`${labels[i]}/${k}`] = v;
          const mutual = mutualLoss(logits, i, config);
          terms[`${labels[i]}/${config.target === 'peers' ? 'dml' : 'ens'}`] = mutual;
          const own = tf.add(o.total, tf.mul(mutual, config.weight)) as tf.Scalar;
          total = total === undefined ? own : (tf.add(total, own) as tf.Scalar);
        });
        return { total: total!, terms, logits: logits[0]! };
      },
    };
    log(
      `scheme dml: ${models.length} peers (${peerCfgs.map((c) => c.name ?? c.module).join(', ')}), target ${config.target}, T ${config.T}, weight ${config.weight}; own losses ${stage.terms.map((t) => `${t.weight}*${t.label}`).join(' + ')}`,
    );
    const { records, seconds } = await fitSingleStage(ctx, task);
    const peers: SideRun[] = [];
    for (const [i, m] of models.entries()) {
      if (i === 0) continue;
      peers.push(
        await saveSideRun({
          dir: join(ctx.runDir, 'peers', labels[i]!),
          label: labels[i]!,
          exp,
          modelConfig: peerCfgs[i]!,
          model: m,
          test: ctx.data.test,
          extra: { scheme: 'dml', trainedWith: exp.name },
        }),
      );
    }
    const ensemble = await ensembleTop1(models, ctx.data.test);
    log(
      `peers: ${peers.map((p) => `${p.label} ${p.testTop1.toFixed(2)}%`).join(', ')}; ensemble of ${models.length}: ${ensemble.toFixed(2)}%`,
    );
    for (const m of models.slice(1)) m.dispose();
    return {
      stages: [
        {
          name: stage.name,
          epochs: stage.epochs,
          losses: [...stage.terms.map((t) => t.label), config.target === 'peers' ? 'dml' : 'ens'],
          seconds,
        },
      ],
      records,
      extra: { peers, ensembleTop1: ensemble },
    };
  },
};
