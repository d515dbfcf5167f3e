/**
 * Test code (moved from src/compress/prune/schedule.ts: only tests used it): a schedule's range
 * checks, and GradualPruner, a driver of magnitude masks that follows a schedule step by step.
 * The prune stage of `retort compress` follows AGP with MaskSet itself (prune-magnitude.ts).
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { type MaskOptions, MaskSet, type PruneScope } from '../../src/compress/prune/magnitude.js';
import { type Schedule, sparsityAt } from '../../src/compress/prune/schedule.js';

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
