/**
 * Sparsity schedules for gradual magnitude pruning (the prune stage follows AGP between epochs,
 * compress/stages/prune-magnitude.ts).
 * - one-shot: the final sparsity from step 0;
 * - constant: the final sparsity from step `start` (TF Model Optimization's ConstantSparsity);
 * - agp: the polynomial schedule of Zhu and Gupta, "To prune, or not to prune: exploring the efficacy
 *   of pruning for model compression", ICLR workshop 2018 (arXiv 2017):
 *   s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3 at t = t0, t0 + dt, ..., t0 + n dt,
 *   held between those updates, 0 before t0 and s_f after the last one. It prunes fast while many
 *   weights are redundant and slowly near the end, where the network has fewer weights to recover.
 * `t` is whatever the caller counts in (optimizer steps, or epochs).
 */
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
