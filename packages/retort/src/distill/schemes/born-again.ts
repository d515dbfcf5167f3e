/**
 * Born-Again Networks (Furlanello, Lipton, Tschannen, Itti, Anandkumar, ICML 2018): generations of
 * one architecture, each distilled from the one before. Generation 1 is trained from the labels
 * alone (`scheme.first`, CE by default); generation k >= 2 trains with the experiment's losses (or
 * stages), its frozen teacher being generation k - 1. The last generation is the run's model; the
 * earlier ones are saved as run folders under generations/, and the ensemble of all generations
 * (the paper's BAN ensemble: averaged logits) is measured on the test split.
 *
 * Resuming restores finished generations from their last checkpoints (no epoch is run again) and
 * continues the unfinished one from its checkpoints.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { lossEntrySchema } from '../../config/experiment.js';
import { layersTeacher } from '../../teachers/layers.js';
import { RetortError } from '../../util/errors.js';
import { parseTerms, refuseViews, trainStages } from './offline.js';
import { ensembleTop1, type SideRun, saveSideRun } from './outputs.js';
import type { ParsedStage, SchemeDescriptor, SchemeOutput } from './types.js';

export const bornAgainSchema = z.strictObject({
  /** Number of generations, the first trained from labels only. */
  generations: z.number().int().min(2).max(10).default(2),
  /** Generation 1's losses (it has no teacher). */
  first: z
    .array(lossEntrySchema)
    .min(1)
    .default([{ name: 'ce', weight: 1 }]),
  /** Generation 1's epochs (default: those of the experiment's last stage). */
  firstEpochs: z.number().int().positive().optional(),
});
export type BornAgainConfig = z.output<typeof bornAgainSchema>;

export const bornAgain: SchemeDescriptor<BornAgainConfig> = {
  name: 'born-again',
  paper: {
    title: 'Born-Again Neural Networks',
    authors: 'Tommaso Furlanello, Zachary C. Lipton, Michael Tschannen, Laurent Itti, Anima Anandkumar',
    venue: 'ICML',
    year: 2018,
  },
  schema: bornAgainSchema,
  teacher: 'none',
  check(_exp, cfg, stages, where) {
    const first = parseTerms(cfg.first, `${where}: scheme.first`);
    for (const t of first)
      if (t.descriptor.needs.logits || (t.descriptor.needs.taps?.teacher.length ?? 0) > 0)
        throw new RetortError(
          `${where}: scheme.first: ${t.label} needs a teacher, and generation 1 has none (it learns from the labels)`,
        );
    if (stages.length === 0) throw new RetortError(`${where}: no stages`);
  },
  async run(ctx) {
    refuseViews(
      ctx,
      'born-again',
      "each generation, trained on the student's view, teaches the next on the teacher's",
    );
    const { exp, config, log } = ctx;
    const lastEpochs = ctx.stages.at(-1)!.epochs;
    const firstStages: ParsedStage[] = [
      {
        name: 'main',
        epochs: config.firstEpochs ?? lastEpochs,
        losses: config.first,
        terms: parseTerms(config.first, `${ctx.where}: scheme.first`),
      },
    ];
    const gens: tfl.LayersModel[] = [];
    const saved: SideRun[] = [];
    const out: SchemeOutput = { stages: [], records: [] };
    for (let g = 1; g <= config.generations; g++) {
      const last = g === config.generations;
      const model = last ? ctx.student : await ctx.buildModel(exp.model);
      const dir = last ? ctx.runDir : join(ctx.runDir, 'generations', `gen${g}`);
      const finished = !last && ['model.ckpt', 'results.json'].every((f) => existsSync(join(dir, f)));
      const prev = gens.at(-1);
      if (finished) log(`born-again: generation ${g} of ${config.generations} already trained in ${dir}`);
      else
        log(
          `born-again: generation ${g} of ${config.generations}${prev ? `, taught by generation ${g - 1}` : ', from the labels'}`,
        );
      // A finished generation goes through the trainer too: resuming from its last checkpoint runs
      // no epoch but restores its weights, the RNG states after it and its records, so the next
      // generation starts exactly as in a straight run.
      const done = await trainStages({
        exp,
        student: model,
        // The previous generation, frozen; its layers are the same as the student's, so taps bind.
        teacher: prev ? layersTeacher(prev, { description: `generation ${g - 1}` }) : undefined,
        stages: g === 1 ? firstStages : ctx.stages,
        data: ctx.data,
        dataInfo: ctx.dataInfo,
        runDir: dir,
        resume: ctx.resume,
        cacheDir: ctx.cacheDir,
        log,
      });
      out.stages.push(...done.stages.map((s) => ({ ...s, name: `gen${g}/${s.name}` })));
      out.records.push(...done.records);
      if (!last)
        saved.push(
          await saveSideRun({
            dir,
            label: `gen${g}`,
            exp,
            modelConfig: exp.model,
            model,
            test: ctx.data.test,
            extra: { scheme: 'born-again', generation: g, trainedWith: exp.name },
          }),
        );
      gens.push(model);
    }
    const ensemble = await ensembleTop1(gens, ctx.data.test);
    log(
      `generations: ${saved.map((s) => `${s.label} ${s.testTop1.toFixed(2)}%`).join(', ')}; ensemble of ${gens.length}: ${ensemble.toFixed(2)}%`,
    );
    for (const m of gens.slice(0, -1)) m.dispose();
    return { ...out, extra: { generations: saved, ensembleTop1: ensemble } };
  },
};
