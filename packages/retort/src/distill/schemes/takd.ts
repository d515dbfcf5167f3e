/**
 * Teacher-assistant KD (Mirzadeh, Farajtabar, Li, Levine, Matsukawa, Ghasemzadeh, "Improved
 * Knowledge Distillation via Teacher Assistant", AAAI 2020): when the teacher is much larger than
 * the student, the gap itself hurts (the student cannot follow a teacher that far ahead), so the
 * knowledge goes down a chain: teacher -> assistant(s) of intermediate size -> student. Each link is
 * an ordinary offline distillation with the experiment's losses (or stages): assistant 1 learns from
 * the experiment's teacher, assistant k from assistant k - 1 (frozen), the student from the last
 * assistant. The paper's chain is ordered by size, largest first; `assistants` is taken in the
 * order given.
 *
 * Each assistant is saved as a run folder under assistants/ (config.json, model.ckpt,
 * results.json: loadable, evaluable and exportable like any run). Losses that tap features bind
 * layer names of one student and one teacher, which an assistant of another architecture does not
 * have: the chain takes response losses (kd, dkd, logit-mse, ...). Resuming restores finished
 * assistants from their last checkpoints (no epoch is run again) and continues the unfinished one.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { modelSchema } from '../../config/experiment.js';
import { modelLabel } from '../../models/configured.js';
import { layersTeacher } from '../../teachers/layers.js';
import type { Teacher } from '../../teachers/types.js';
import { RetortError } from '../../util/errors.js';
import { refuseViews, trainStages } from './offline.js';
import { type SideRun, saveSideRun } from './outputs.js';
import type { ParsedStage, SchemeDescriptor, SchemeOutput } from './types.js';

export const takdSchema = z.strictObject({
  /** The assistants, teacher side first (the paper: decreasing size); at least one. */
  assistants: z.array(modelSchema).min(1).max(8),
  /** Epochs of each assistant's training (default: the experiment's stages as they are). */
  assistantEpochs: z.number().int().positive().optional(),
});
export type TakdConfig = z.output<typeof takdSchema>;

export const takd: SchemeDescriptor<TakdConfig> = {
  name: 'takd',
  paper: {
    title: 'Improved Knowledge Distillation via Teacher Assistant',
    authors:
      'Seyed Iman Mirzadeh, Mehrdad Farajtabar, Ang Li, Nir Levine, Akihiro Matsukawa, Hassan Ghasemzadeh',
    venue: 'AAAI',
    year: 2020,
  },
  schema: takdSchema,
  teacher: 'required',
  check(_exp, cfg, stages, where) {
    if (cfg.assistantEpochs !== undefined && stages.length > 1)
      throw new RetortError(
        `${where}: scheme.assistantEpochs applies to one-stage experiments; with stages, each assistant runs the stages as given`,
      );
    for (const s of stages)
      for (const t of s.terms) {
        const tapped = [...new Set([...Object.keys(t.taps.student), ...Object.keys(t.taps.teacher)])];
        if (
          (t.descriptor.needs.taps?.student.length ?? 0) + (t.descriptor.needs.taps?.teacher.length ?? 0) >
          0
        )
          throw new RetortError(
            `${where}: scheme takd: loss ${t.label} taps features${tapped.length ? ` (${tapped.join(', ')})` : ''}, whose layer names belong to one teacher and one student; down a chain of other architectures use response losses (kd, dkd, logit-mse, ...)`,
          );
      }
  },
  async run(ctx) {
    refuseViews(
      ctx,
      'takd',
      "each assistant, trained on the student's view, teaches the next link on the teacher's",
    );
    const { exp, config, log } = ctx;
    const assistantStages: ParsedStage[] =
      config.assistantEpochs === undefined
        ? ctx.stages
        : ctx.stages.map((s) => ({ ...s, epochs: config.assistantEpochs! }));
    const chain = [...config.assistants.map((m, i) => ({ cfg: m, label: `ta${i + 1}` })), undefined];
    const saved: SideRun[] = [];
    const out: SchemeOutput = { stages: [], records: [] };
    let teacher: Teacher = ctx.teacher!;
    let previous: tfl.LayersModel | undefined;
    for (const link of chain) {
      const model = link ? await ctx.buildModel(link.cfg) : ctx.student;
      const dir = link ? join(ctx.runDir, 'assistants', link.label) : ctx.runDir;
      const who = link ? `assistant ${link.label} (${modelLabel(link.cfg)})` : 'the student';
      const finished =
        link !== undefined && ['model.ckpt', 'results.json'].every((f) => existsSync(join(dir, f)));
      log(`takd: ${who}${finished ? ` already trained in ${dir}` : `, taught by ${teacher.description}`}`);
      // A finished assistant goes through the trainer too: resuming from its last checkpoint runs
      // no epoch but restores its weights and the RNG states after it, as in a straight run.
      const done = await trainStages({
        exp,
        student: model,
        teacher,
        stages: link ? assistantStages : ctx.stages,
        data: ctx.data,
        dataInfo: ctx.dataInfo,
        runDir: dir,
        resume: ctx.resume,
        cacheDir: ctx.cacheDir,
        log,
      });
      const tag = link?.label ?? 'student';
      out.stages.push(...done.stages.map((s) => ({ ...s, name: `${tag}/${s.name}` })));
      out.records.push(...done.records);
      if (link) {
        saved.push(
          await saveSideRun({
            dir,
            label: link.label,
            exp,
            modelConfig: link.cfg,
            model,
            test: ctx.data.test,
            extra: { scheme: 'takd', link: saved.length + 1, trainedWith: exp.name },
          }),
        );
        previous?.dispose();
        previous = model;
        teacher = layersTeacher(model, { description: `assistant ${link.label}` });
      }
    }
    log(`assistants: ${saved.map((s) => `${s.label} ${s.model} ${s.testTop1.toFixed(2)}%`).join(', ')}`);
    previous?.dispose();
    return { ...out, extra: { assistants: saved } };
  },
};
