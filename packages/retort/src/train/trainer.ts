/**
 * The training loop shared by baselines and every distillation scheme: batches from a loader, one
 * optimizer step on the task's loss, per-epoch evaluation (loss, top-1, top-5), a JSONL metrics log,
 * atomic checkpoints (weights, optimizer state, RNG states, epoch) and exact resumption. A non-finite
 * loss stops the run naming the step and the loss terms that went bad.
 */
import { appendFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { Loader } from '../data/loader.js';
import { writeFileAtomic } from '../util/atomic.js';
import { RetortError } from '../util/errors.js';
import { globalRng } from '../util/rng.js';
import { type Checkpoint, loadCheckpoint, saveCheckpoint, saveModelWeights } from './checkpoint.js';
import { argmaxRows, Mean, topkCorrect } from './metrics.js';
import { formatSeconds, Progress } from './progress.js';
import { lrAt, type Schedule } from './schedule.js';

/** What the loss of one batch sees. */
export interface StepInput {
  x: tf.Tensor4D;
  /** int32 class indices [n]. */
  y: tf.Tensor1D;
  /** Dataset indices [n]. */
  index: Uint32Array;
  epoch: number;
  /** With paired views (cross-modal data): what the teacher sees of the same samples. */
  teacherX?: tf.Tensor4D;
}

export interface LossOutput {
  total: tf.Scalar;
  /** Named parts of the loss, for the log and for NaN reports. */
  terms: Record<string, tf.Scalar>;
  /** The student's logits [n, K], for training accuracy (optional). */
  logits?: tf.Tensor;
}

export interface TrainTask {
  /** The model being trained (the run's result). */
  model: tfl.LayersModel;
  /** Extra trainable modules (connectors, embeddings, ...) updated and checkpointed with it. */
  parts?: readonly tfl.LayersModel[];
  /** The loss of one batch; runs inside the optimizer's gradient tape. */
  loss(input: StepInput): LossOutput;
  /** Work outside the tape before each step (e.g. a frozen teacher's forward pass). */
  prepare?(input: StepInput): void | Promise<void>;
  /** Frees what `prepare` made, after the step. */
  release?(): void;
  /**
   * Other trained models evaluated on the validation split after each epoch beside `model`, by
   * label (an online scheme's peers, self-distillation's early exits). Training and checkpoints see
   * only `model` and `parts`: an entry here is either in `parts` or shares its weights with them.
   */
  others?: Readonly<Record<string, tfl.LayersModel>>;
}

/** An optimizer with a settable learning rate (train/optimizers.ts). */
export interface LrOptimizer extends tf.Optimizer {
  lr: number;
}

export interface FitOptions {
  epochs: number;
  optimizer: LrOptimizer;
  schedule: Schedule;
  train: Loader;
  /** Evaluated after each epoch (no augmentation). */
  val?: Loader;
  /**
   * Which split `val` is: a held-out part of the training set ('validation', the default) or the
   * test split (an experiment without valFraction). The epoch line names it; the best checkpoint
   * (best.ckpt) is kept only on a validation split, as choosing by the test split would leak it.
   */
  valSplit?: 'validation' | 'test';
  /** Folder for checkpoints/ and metrics.jsonl; nothing is written when absent. */
  runDir?: string;
  /** Continue from runDir/checkpoints/last.ckpt. */
  resume?: boolean;
  /** Called after each epoch with its record. */
  onEpoch?: (r: EpochRecord) => void;
  log?: (line: string) => void;
}

export interface EpochRecord {
  epoch: number;
  lr: number;
  trainLoss: number;
  terms: Record<string, number>;
  trainTop1: number;
  valLoss?: number;
  valTop1?: number;
  valTop5?: number;
  /** The split valLoss/valTop1/valTop5 are measured on (FitOptions.valSplit). */
  valSplit?: 'validation' | 'test';
  /** TrainTask.others on the validation split, by label. */
  others?: Record<string, { valLoss: number; valTop1: number; valTop5: number }>;
  seconds: number;
  imgPerSec: number;
}

function trainableVariables(task: TrainTask): tf.Variable[] {
  const mods = [task.model, ...(task.parts ?? [])];
  return mods.flatMap((m) => m.trainableWeights.map((w) => w.read() as tf.Variable));
}

function allWeights(task: TrainTask): { name: string; tensor: tf.Tensor }[] {
  const mods = [task.model, ...(task.parts ?? [])];
  return mods.flatMap((m, mi) =>
    m.weights.map((w, wi) => ({ name: `m${mi}/w${wi}/${w.name}`, tensor: w.read() })),
  );
}

/**
 * Evaluates `model` on `loader`: mean cross-entropy, top-1 and top-5 accuracy (percent); with
 * `predictions`, also each item's top-1 class and label in the loader's order.
 */
export async function evaluate(
  model: tfl.LayersModel,
  loader: Loader,
  opts: { predictions?: boolean } = {},
): Promise<{ loss: number; top1: number; top5: number; predicted?: Int32Array; labels?: Int32Array }> {
  const K = model.outputs[0]!.shape[model.outputs[0]!.shape.length - 1] as number;
  let loss = 0;
  let h1 = 0;
  let h5 = 0;
  let n = 0;
  const preds: Int32Array[] = [];
  const labels: Int32Array[] = [];
  for await (const b of loader.epoch()) {
    const logits = tf.tidy(
      () =>
        model.predict(
          tf.tensor4d(b.x, [b.n, ...(model.inputs[0]!.shape.slice(1) as [number, number, number])]),
        ) as tf.Tensor,
    );
    const ce = tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(b.y, 'int32'), K), logits));
    loss += (ce.dataSync()[0] as number) * b.n;
    const values = logits.dataSync() as Float32Array;
    const [a, c] = topkCorrect(values, b.y, K, [1, Math.min(5, K)]);
    if (opts.predictions) {
      preds.push(argmaxRows(values, K));
      labels.push(Int32Array.from(b.y));
    }
    h1 += a!;
    h5 += c!;
    n += b.n;
    tf.dispose([logits, ce]);
  }
  const out = { loss: loss / n, top1: (100 * h1) / n, top5: (100 * h5) / n };
  if (!opts.predictions) return out;
  const cat = (parts: Int32Array[]) => {
    const all = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return all;
  };
  return { ...out, predicted: cat(preds), labels: cat(labels) };
}

/**
 * Training time spent by earlier processes, by training folder: what fit() read from the checkpoint it
 * resumed from. A run's wall time in a process that resumed it misses the epochs done before the
 * interruption; runExperiment adds these back (takeRestoredSeconds), so a resumed run reports the
 * time of all its epochs. The part of an epoch lost to the interruption is not counted.
 */
const restoredSeconds = new Map<string, number>();

/** The restored seconds of `runDir` and of the folders under it (stages), removed from the ledger. */
export function takeRestoredSeconds(runDir: string): number {
  const root = resolve(runDir);
  let total = 0;
  for (const [dir, s] of restoredSeconds)
    if (dir === root || dir.startsWith(root + sep)) {
      total += s;
      restoredSeconds.delete(dir);
    }
  return total;
}

/** Trains `task` for `opts.epochs` epochs; returns the per-epoch records (including resumed ones). */
export async function fit(task: TrainTask, opts: FitOptions): Promise<EpochRecord[]> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const vars = trainableVariables(task);
  const ckptDir = opts.runDir ? join(opts.runDir, 'checkpoints') : undefined;
  if (ckptDir) mkdirSync(ckptDir, { recursive: true });
  const records: EpochRecord[] = [];
  let startEpoch = 0;
  let globalStep = 0;
  const fitStart = performance.now();
  // Seconds of this fit spent before the checkpoint resumed from (0 on a fresh start).
  let before = 0;
  if (opts.resume) {
    if (!ckptDir) throw new Error('resume needs a run folder');
    const { path, ck } = latestGoodCheckpoint(ckptDir, log);
    ({ startEpoch, globalStep } = await restore(path, ck, task, opts));
    records.push(...((ck.header.meta['records'] as EpochRecord[] | undefined) ?? []));
    const elapsed = ck.header.meta['elapsedSeconds'];
    // Checkpoints written before elapsedSeconds existed: the epochs' own seconds (no evaluation).
    before = typeof elapsed === 'number' ? elapsed : records.reduce((a, r) => a + r.seconds, 0);
    restoredSeconds.set(resolve(opts.runDir!), before);
    // metrics.jsonl may hold epochs past the checkpoint resumed from (a damaged last one): it
    // restarts from the checkpoint's own records, so no epoch is listed twice.
    if (opts.runDir) {
      writeFileAtomic(
        join(opts.runDir, 'metrics.jsonl'),
        records.map((r) => `${JSON.stringify(r)}\n`).join(''),
      );
      writeFileAtomic(join(opts.runDir, 'metrics.csv'), metricsCsv(records));
    }
    log(`resumed from ${path} at epoch ${startEpoch}`);
  }
  // A stream's length is known after its first pass; until then the schedule moves per epoch.
  let steps = opts.train.length;
  if (steps === 0 && startEpoch < opts.epochs)
    throw new RetortError(
      `the training split has ${opts.train.size} items, fewer than one batch of ${opts.train.batchSize} (the last partial batch is dropped): 0 optimizer steps per epoch; lower data.batchSize or use more data`,
    );
  const inShape = task.model.inputs[0]!.shape.slice(1) as [number, number, number];
  const valSplit = opts.valSplit ?? 'validation';
  const keepBest = opts.runDir !== undefined && opts.val !== undefined && valSplit === 'validation';
  // Resumed records say which epoch was best so far; best.ckpt on disk holds its weights.
  let bestTop1 = Math.max(-1, ...records.map((r) => r.valTop1 ?? -1));
  const progress = new Progress(steps === undefined ? Number.NaN : (opts.epochs - startEpoch) * steps);
  let done = 0;
  for (let epoch = startEpoch; epoch < opts.epochs; epoch++) {
    const t0 = performance.now();
    const lossMean = new Mean();
    const termMeans = new Map<string, Mean>();
    let correct = 0;
    let seen = 0;
    let step = 0;
    for await (const b of opts.train.epoch()) {
      opts.optimizer.lr = lrAt(opts.schedule, epoch + (steps ? Math.min(step / steps, 1) : 0));
      const x = tf.tensor4d(b.x, [b.n, ...inShape]);
      const y = tf.tensor1d(b.y, 'int32');
      let termValues: Record<string, number> = {};
      let logitsHit = 0;
      const teacherX =
        b.teacherX && b.teacherShape ? tf.tensor4d(b.teacherX, [b.n, ...b.teacherShape]) : undefined;
      const input: StepInput = { x, y, index: b.index, epoch, ...(teacherX ? { teacherX } : {}) };
      await task.prepare?.(input);
      let total: tf.Scalar;
      try {
        total = opts.optimizer.minimize(
          () => {
            const out = task.loss(input);
            // Read the terms inside the tape: they are intermediate tensors disposed with it.
            termValues = Object.fromEntries(
              Object.entries(out.terms).map(([k, v]) => [k, v.dataSync()[0] as number]),
            );
            if (out.logits) {
              const K = out.logits.shape[1] as number;
              logitsHit = topkCorrect(out.logits.dataSync() as Float32Array, b.y, K, [1])[0]!;
            }
            return out.total;
          },
          true,
          vars,
        )!;
      } finally {
        task.release?.();
      }
      const value = total.dataSync()[0] as number;
      tf.dispose([x, y, total, ...(teacherX ? [teacherX] : [])]);
      if (!Number.isFinite(value) || Object.values(termValues).some((v) => !Number.isFinite(v))) {
        const terms = Object.entries(termValues)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ');
        throw new Error(
          `non-finite loss at epoch ${epoch + 1}, step ${step + 1} (global step ${globalStep + 1}): total=${value}${terms ? `; terms: ${terms}` : ''}`,
        );
      }
      lossMean.add(value, b.n);
      for (const [k, v] of Object.entries(termValues)) {
        if (!termMeans.has(k)) termMeans.set(k, new Mean());
        termMeans.get(k)!.add(v, b.n);
      }
      correct += logitsHit;
      seen += b.n;
      step++;
      globalStep++;
      done++;
      const sec = (performance.now() - t0) / 1000;
      progress.update(epoch + 1, opts.epochs, step, steps, done, lossMean.value, seen / sec);
    }
    progress.endLine();
    steps ??= opts.train.length;
    const seconds = (performance.now() - t0) / 1000;
    const rec: EpochRecord = {
      epoch: epoch + 1,
      lr: opts.optimizer.lr,
      trainLoss: lossMean.value,
      terms: Object.fromEntries([...termMeans].map(([k, m]) => [k, m.value])),
      trainTop1: seen > 0 ? (100 * correct) / seen : Number.NaN,
      seconds,
      imgPerSec: seen / seconds,
    };
    if (opts.val) {
      const v = await evaluate(task.model, opts.val);
      rec.valLoss = v.loss;
      rec.valTop1 = v.top1;
      rec.valTop5 = v.top5;
      rec.valSplit = valSplit;
      for (const [label, m] of Object.entries(task.others ?? {})) {
        const o = await evaluate(m, opts.val);
        rec.others ??= {};
        rec.others[label] = { valLoss: o.loss, valTop1: o.top1, valTop5: o.top5 };
      }
    }
    records.push(rec);
    const eta = formatSeconds((opts.epochs - epoch - 1) * seconds);
    log(
      `epoch ${rec.epoch}/${opts.epochs} loss ${rec.trainLoss.toFixed(4)}` +
        (rec.valTop1 !== undefined
          ? ` ${valSplit === 'test' ? 'test' : 'val'} top-1 ${rec.valTop1.toFixed(2)}%`
          : '') +
        Object.entries(rec.others ?? {})
          .map(([k, o]) => ` (${k} ${o.valTop1.toFixed(2)}%)`)
          .join('') +
        ` ${rec.imgPerSec.toFixed(0)} img/s ${seconds.toFixed(1)}s ETA ${eta}`,
    );
    if (opts.runDir) {
      appendFileSync(join(opts.runDir, 'metrics.jsonl'), `${JSON.stringify(rec)}\n`);
      writeFileAtomic(join(opts.runDir, 'metrics.csv'), metricsCsv(records));
    }
    if (keepBest && rec.valTop1 !== undefined && rec.valTop1 > bestTop1) {
      bestTop1 = rec.valTop1;
      saveModelWeights(join(opts.runDir!, 'best.ckpt'), task.model, {
        epoch: rec.epoch,
        valTop1: rec.valTop1,
      });
    }
    if (ckptDir) {
      // The last good checkpoint stays as previous.ckpt until the new one is fully written, so a
      // damaged or half-written last.ckpt always has a fallback.
      const last = join(ckptDir, 'last.ckpt');
      if (existsSync(last)) renameSync(last, join(ckptDir, 'previous.ckpt'));
      const elapsed = before + (performance.now() - fitStart) / 1000;
      await checkpoint(last, task, opts, epoch + 1, globalStep, records, elapsed);
    }
    opts.onEpoch?.(rec);
  }
  // A run must not end "successfully" with weights it cannot use.
  for (const v of trainableVariables(task)) {
    const ok = tf.tidy(() => tf.all(tf.isFinite(v)).dataSync()[0]);
    if (!ok)
      throw new RetortError(
        `after epoch ${opts.epochs}: variable ${v.name} holds non-finite values (training diverged); lower the learning rate`,
      );
  }
  return records;
}

/** A CSV cell: numbers as they are, text quoted when it needs it. */
function csvCell(v: unknown): string {
  if (v === undefined || v === null) return '';
  const t = String(v);
  return /[",\n]/.test(t) ? `"${t.replaceAll('"', '""')}"` : t;
}

/**
 * The epoch records as CSV, one row per epoch: the record's fields, each loss term as
 * `term:<label>`, each extra model's validation as `<label>:valTop1` (and valLoss, valTop5);
 * columns in order of first appearance, empty where an epoch lacks one.
 */
export function metricsCsv(records: readonly EpochRecord[]): string {
  const rows = records.map((r) => {
    const row = new Map<string, unknown>();
    for (const [k, v] of Object.entries(r)) {
      if (k === 'terms')
        for (const [t, x] of Object.entries(v as Record<string, number>)) row.set(`term:${t}`, x);
      else if (k === 'others')
        for (const [label, o] of Object.entries(v as NonNullable<EpochRecord['others']>))
          for (const [m, x] of Object.entries(o)) row.set(`${label}:${m}`, x);
      else row.set(k, v);
    }
    return row;
  });
  const cols: string[] = [];
  for (const row of rows) for (const k of row.keys()) if (!cols.includes(k)) cols.push(k);
  return [cols.map(csvCell).join(','), ...rows.map((row) => cols.map((c) => csvCell(row.get(c))).join(','))]
    .map((l) => `${l}\n`)
    .join('');
}

async function checkpoint(
  path: string,
  task: TrainTask,
  opts: FitOptions,
  epoch: number,
  globalStep: number,
  records: EpochRecord[],
  elapsedSeconds: number,
): Promise<void> {
  const vars = trainableVariables(task);
  const byVar = new Map(vars.map((v, i) => [v.name, i]));
  // Optimizer state is keyed by variable names, which depend on build order in the process; store
  // it by the variable's index in the trainable list instead.
  const optWeights = await opts.optimizer.getWeights();
  const optTensors = optWeights.map((w, i) => {
    if (i === 0) return { name: 'opt/iterations', tensor: tf.cast(w.tensor, 'float32') };
    const m = /^(.*)\/([^/]+)$/.exec(w.name);
    const idx = m ? byVar.get(m[1]!) : undefined;
    if (m === null || idx === undefined)
      throw new Error(`checkpoint: optimizer state '${w.name}' matches no trainable variable`);
    return { name: `opt/v${idx}/${m[2]}`, tensor: w.tensor };
  });
  saveCheckpoint(
    path,
    {
      epoch,
      globalStep,
      meta: {
        globalRng: globalRng()?.getState() ?? null,
        trainRng: opts.train.rng?.getState() ?? null,
        optimizer: opts.optimizer.getClassName(),
        records,
        elapsedSeconds,
      },
    },
    [...allWeights(task), ...optTensors],
  );
  tf.dispose(optTensors[0]!.tensor);
}

/**
 * checkpoints/last.ckpt, or previous.ckpt with a warning when last is missing or fails its checks
 * (truncated, flipped bits); an error naming both when neither loads.
 */
export function latestGoodCheckpoint(
  ckptDir: string,
  log: (l: string) => void,
): { path: string; ck: Checkpoint } {
  const last = join(ckptDir, 'last.ckpt');
  const previous = join(ckptDir, 'previous.ckpt');
  const problems: string[] = [];
  for (const path of [last, previous]) {
    if (!existsSync(path)) {
      problems.push(`${path}: missing`);
      continue;
    }
    try {
      const ck = loadCheckpoint(path);
      if (path !== last)
        log(`warning: ${problems.join('; ')}; resuming from ${path} (epoch ${ck.header.epoch}) instead`);
      return { path, ck };
    } catch (e) {
      if (!(e instanceof RetortError)) throw e;
      problems.push(e.message);
    }
  }
  throw new RetortError(`--resume: no usable checkpoint in ${ckptDir}: ${problems.join('; ')}`, {
    file: last,
  });
}

async function restore(
  path: string,
  ck: Checkpoint,
  task: TrainTask,
  opts: FitOptions,
): Promise<{ startEpoch: number; globalStep: number }> {
  const weights = allWeights(task);
  const saved = ck.header.tensors.filter((t) => !t.name.startsWith('opt/'));
  if (saved.length !== weights.length) {
    throw new Error(
      `checkpoint ${path}: has ${saved.length} weights, the model has ${weights.length} (different architecture?)`,
    );
  }
  weights.forEach((w, i) => {
    const s = ck.values.get(saved[i]!.name)!;
    if (s.shape.join(',') !== w.tensor.shape.join(',')) {
      throw new Error(
        `checkpoint ${path}: weight ${saved[i]!.name} has shape [${s.shape}], model's ${w.name} is [${w.tensor.shape}]`,
      );
    }
    (w.tensor as tf.Variable).assign(tf.tensor(s.data, s.shape));
  });
  const vars = trainableVariables(task);
  const optState: { name: string; tensor: tf.Tensor }[] = [];
  const iters = ck.values.get('opt/iterations');
  optState.push({ name: 'iter', tensor: tf.scalar(iters ? iters.data[0]! : 0, 'int32') });
  for (const t of ck.header.tensors) {
    const m = /^opt\/v(\d+)\/(.+)$/.exec(t.name);
    if (!m) continue;
    const v = vars[Number(m[1])];
    if (v === undefined)
      throw new Error(`checkpoint ${path}: optimizer state ${t.name} refers to a missing variable`);
    const s = ck.values.get(t.name)!;
    optState.push({ name: `${v.name}/${m[2]}`, tensor: tf.tensor(s.data, s.shape) });
  }
  await opts.optimizer.setWeights(optState);
  tf.dispose(optState.map((s) => s.tensor));
  const meta = ck.header.meta;
  const g = meta['globalRng'] as number[] | null;
  if (g && globalRng()) globalRng()!.setState(g);
  const r = meta['trainRng'] as number[] | null;
  if (r && opts.train.rng) opts.train.rng.setState(r);
  return { startEpoch: ck.header.epoch, globalStep: ck.header.globalStep };
}
