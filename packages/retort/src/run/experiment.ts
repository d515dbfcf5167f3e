/**
 * Runs one experiment file end to end: data, student (and frozen teacher), each stage's losses,
 * optimizer and schedule, the trainer, then a final test evaluation. Everything lands in the run
 * folder: config.json, metrics.jsonl, checkpoints/, model.ckpt, results.json.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Experiment } from '../config/experiment.js';
import { buildData, type DataSplits } from '../data/build.js';
import { BatchLoader } from '../data/loader.js';
import type { DataInfo, Parts } from '../distill/losses/types.js';
import { buildOfflineTask, parseTerms } from '../distill/schemes/offline.js';
import { cacheRefusal, TeacherCache } from '../distill/teacher-cache.js';
import { buildConfiguredModel, modelLabel } from '../models/configured.js';
import { loadTeacherSource, type TeacherData, teacherTop1 } from '../teachers/load.js';
import type { Teacher } from '../teachers/types.js';
import { saveModelWeights } from '../train/checkpoint.js';
import { makeOptimizer, makeSchedule } from '../train/from-config.js';
import { prepareRunDir, releaseRunLock, writeResults } from '../train/run-dir.js';
import { type EpochRecord, evaluate, fit } from '../train/trainer.js';
import { seedEverything } from '../util/rng.js';

export interface RunOptions {
  /** Folder that holds run folders (default 'runs'). */
  runsRoot?: string;
  force?: boolean;
  resume?: boolean;
  /** Where teacher caches live (default <runsRoot>/.cache/teacher). */
  cacheDir?: string;
  log?: (line: string) => void;
  /** Train and test splits from code, for `data.dataset: code` (see arrayDataset). */
  data?: DataSplits | undefined;
}

export interface RunResults {
  name: string;
  runDir: string;
  model: string;
  params: number;
  teacher?: { model: string; params: number; testTop1: number };
  stages: { name: string; epochs: number; losses: string[]; seconds: number }[];
  testTop1: number;
  testTop5: number;
  testLoss: number;
  trainSeconds: number;
  epochs: EpochRecord[];
}

/**
 * The experiment's teacher (zoo run or checkpoint, ONNX file, tfjs model), or undefined when it has
 * none; `taps` are the teacher taps its losses use.
 */
export async function loadTeacher(
  exp: Experiment,
  data: TeacherData,
  runsRoot = 'runs',
  taps: readonly string[] = [],
): Promise<Teacher | undefined> {
  if (!exp.teacher) return undefined;
  return loadTeacherSource(exp.teacher, data, { runsRoot, taps });
}

export async function runExperiment(
  exp: Experiment,
  where: string,
  opts: RunOptions = {},
): Promise<RunResults> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const runsRoot = opts.runsRoot ?? 'runs';
  await tf.setBackend('native');
  // Terms are checked before anything slow happens.
  const stages = (exp.stages ?? [{ name: 'main', epochs: exp.epochs, losses: exp.losses }]).map((s) => ({
    ...s,
    terms: parseTerms(s.losses, where),
  }));
  // Data is read and checked before the run folder exists: a refused split leaves nothing behind.
  const data = buildData(exp.data, exp.seed, opts.data);
  const runDir = prepareRunDir(runsRoot, exp.name, exp, {
    force: opts.force ?? false,
    resume: opts.resume ?? false,
    log,
  });
  let teacher: Teacher | undefined;
  try {
    seedEverything(exp.seed);
    const student = await buildConfiguredModel(exp.model, {
      inputShape: data.shape,
      numClasses: data.numClasses,
    });
    const teacherTaps = [
      ...new Set(stages.flatMap((s) => s.terms.flatMap((t) => Object.values(t.taps.teacher)))),
    ];
    teacher = await loadTeacher(exp, data, runsRoot, teacherTaps);
    let teacherInfo: RunResults['teacher'];
    if (teacher) {
      const top1 = await teacherTop1(teacher, data.test, data.shape);
      const model = exp.teacher?.model?.name ?? teacher.description;
      teacherInfo = { model, params: teacher.params ?? 0, testTop1: top1 };
      log(`teacher ${teacherInfo.model}: ${teacherInfo.params} params, test top-1 ${top1.toFixed(2)}%`);
    }
    const results: RunResults['stages'] = [];
    const records: EpochRecord[] = [];
    const t0 = performance.now();
    const dataInfo: DataInfo = {
      // Dataset indices run over the whole split (a validation part included); a stream has none.
      numExamples: data.train instanceof BatchLoader ? data.train.data.count : 0,
      numClasses: data.numClasses,
      seed: exp.seed,
    };
    // Trainable parts by term label, carried from stage to stage.
    const parts: Record<string, Parts> = {};
    for (const [si, stage] of stages.entries()) {
      let cache: TeacherCache | null = null;
      const common = { student, teacher, terms: stage.terms, data: dataInfo, existingParts: parts };
      const task0 = buildOfflineTask(common);
      Object.assign(parts, task0.partsByTerm);
      if (teacher && task0.usesTeacher && exp.cacheTeacher) {
        const plain = data.trainPlain;
        const refusal =
          plain instanceof BatchLoader
            ? cacheRefusal(exp.data)
            : 'teacher outputs not cached: the training split is streamed (no item numbers to key them by); the teacher runs on every batch';
        if (refusal || !(plain instanceof BatchLoader)) log(refusal ?? '');
        else {
          cache = await TeacherCache.build(
            teacher,
            plain,
            data.key,
            opts.cacheDir ?? join(runsRoot, '.cache', 'teacher'),
            task0.teacherTaps,
          );
          if (cache.featureRefusal) log(cache.featureRefusal);
          const what =
            cache.layers.length > 0 ? `logits and features (${cache.layers.join(', ')})` : 'logits';
          log(`teacher ${what} ${cache.reused ? 'reused from' : 'cached in'} ${cache.path}`);
        }
      }
      const task = cache ? buildOfflineTask({ ...common, cache }) : task0;
      const optCfg = 'optimizer' in stage && stage.optimizer ? stage.optimizer : exp.optimizer;
      const schedCfg = 'schedule' in stage && stage.schedule ? stage.schedule : exp.schedule;
      const optimizer = makeOptimizer(optCfg);
      const s0 = performance.now();
      log(
        `stage ${stage.name}: ${stage.epochs} epochs, losses ${stage.terms.map((t) => `${t.weight}*${t.label}`).join(' + ')}`,
      );
      const recs = await fit(task, {
        epochs: stage.epochs,
        optimizer,
        schedule: makeSchedule(schedCfg, optCfg.lr, stage.epochs),
        train: data.train,
        val: data.val,
        runDir: stages.length === 1 ? runDir : join(runDir, 'stages', `${si + 1}-${stage.name}`),
        // A stage resumes when it left any checkpoint (last, or previous if last is damaged).
        resume:
          (opts.resume ?? false) &&
          ['last.ckpt', 'previous.ckpt'].some((f) =>
            existsSync(
              join(
                stages.length === 1 ? runDir : join(runDir, 'stages', `${si + 1}-${stage.name}`),
                'checkpoints',
                f,
              ),
            ),
          ),
        log,
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
    const trainSeconds = (performance.now() - t0) / 1000;
    const test = await evaluate(student, data.test);
    saveModelWeights(join(runDir, 'model.ckpt'), student, { model: exp.model, experiment: exp.name });
    const out: RunResults = {
      name: exp.name,
      runDir,
      model: modelLabel(exp.model),
      params: student.countParams(),
      ...(teacherInfo ? { teacher: teacherInfo } : {}),
      stages: results,
      testTop1: test.top1,
      testTop5: test.top5,
      testLoss: test.loss,
      trainSeconds,
      epochs: records,
    };
    writeResults(runDir, out);
    log(
      `${exp.name}: test top-1 ${test.top1.toFixed(2)}%, ${out.params} params, ${trainSeconds.toFixed(1)} s -> ${runDir}`,
    );
    return out;
  } finally {
    // The teacher (an onnxruntime session, or a tfjs model) is the run's own: free it.
    teacher?.dispose();
    releaseRunLock(join(runDir, 'lock'));
  }
}
