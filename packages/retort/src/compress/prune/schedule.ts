/**
 * Sparsity schedules for gradual magnitude pruning, and the driver that follows one during training.
 * - one-shot: the final sparsity from step 0;
 * - constant: the final sparsity from step `start` (TF Model Optimization's ConstantSparsity);
 * - agp: the polynomial schedule of Zhu and Gupta, "To prune, or not to prune: exploring the efficacy
 *   of pruning for model compression", ICLR workshop 2018 (arXiv 2017):
 *   s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3 at t = t0, t0 + dt, ..., t0 + n dt,
 *   held between those updates, 0 before t0 and s_f after the last one. It prunes fast while many
 *   weights are redundant and slowly near the end, where the network has fewer weights to recover.
 * `t` is whatever the caller counts in (optimizer steps, or epochs).
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { type MaskOptions, MaskSet, type PruneScope } from './magnitude.js';

export type Schedule =
  | { kind: 'one-shot'; sparsity: number }
  | { kind: 'constant'; sparsity: number; start: number }
  | {
      kind: 'agp';
      /** s_i, the sparsity at t0. */
      initial: number;
      /** s_f, the sparsity from t0 + n dt on. */
      final: number;
      /** t0. */
      start: number;
      /** n, the number of pruning updates after t0. */
      steps: number;
      /** dt, the interval between updates. */
      every: number;
    };

function inUnit(v: number, key: string): void {
  if (!(v >= 0 && v < 1)) throw new Error(`prune schedule: ${key} must be in [0, 1), got ${v}`);
}
function count(v: number, key: string, min: number): void {
  if (!(Number.isInteger(v) && v >= min))
    throw new Error(`prune schedule: ${key} must be an integer >= ${min}, got ${v}`);
}

/** Throws, naming the key, when a schedule's values are out of range. */
export function checkSchedule(s: Schedule): void {
  switch (s.kind) {
    case 'one-shot':
      inUnit(s.sparsity, 'sparsity');
      break;
    case 'constant':
      inUnit(s.sparsity, 'sparsity');
      count(s.start, 'start', 0);
      break;
    case 'agp':
      inUnit(s.initial, 'initial');
      inUnit(s.final, 'final');
      if (s.initial > s.final)
        throw new Error(`prune schedule: initial (${s.initial}) must not exceed final (${s.final})`);
      count(s.start, 'start', 0);
      count(s.steps, 'steps', 1);
      count(s.every, 'every', 1);
      break;
    default:
      throw new Error(
        `prune schedule: unknown kind '${(s as { kind: string }).kind}' (one-shot, constant, agp)`,
      );
  }
}

/** Target sparsity at step t under a schedule. */
export function sparsityAt(s: Schedule, t: number): number {
  switch (s.kind) {
    case 'one-shot':
      return s.sparsity;
    case 'constant':
      return t >= s.start ? s.sparsity : 0;
    case 'agp': {
      if (t < s.start) return 0;
      const span = s.steps * s.every;
      // Pruning happens every `every` steps: hold the value between updates.
      const tq = Math.min(span, Math.floor((t - s.start) / s.every) * s.every);
      return s.final + (s.initial - s.final) * (1 - tq / span) ** 3;
    }
  }
}

/**
 * Gradual pruning: masks that follow a schedule. Call step(t) after the optimizer step t (0-based):
 * where the target changed it re-selects the smallest weights (pruned weights are 0, so they stay
 * pruned while the target rises), otherwise it re-applies the masks.
 */
export class GradualPruner {
  readonly masks: MaskSet;

  constructor(
    model: tfl.LayersModel,
    readonly schedule: Schedule,
    readonly scope: PruneScope,
    opts: MaskOptions = {},
  ) {
    checkSchedule(schedule);
    this.masks = MaskSet.prune(model, sparsityAt(schedule, 0), scope, opts);
  }

  /** Brings the masks to the target of step t and applies them; returns that target. */
  step(t: number): number {
    const target = sparsityAt(this.schedule, t);
    if (target !== this.masks.current.sparsity) this.masks.update(target, this.scope);
    else this.masks.apply();
    return target;
  }

  dispose(): void {
    this.masks.dispose();
  }
}
