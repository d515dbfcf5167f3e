/**
 * Learning-rate schedules as pure functions of the (fractional) epoch, so a resumed run gets the same
 * rate at the same step. Forms as in torch.optim.lr_scheduler: StepLR, MultiStepLR (RepDistiller's
 * CIFAR recipe: 0.05, x0.1 at 150/180/210 of 240) and CosineAnnealingLR, each with an optional linear
 * warm-up from lr * warmupFrom over the first `warmupEpochs`.
 */
export type Schedule =
  | { kind: 'constant'; lr: number; warmupEpochs?: number; warmupFrom?: number }
  | { kind: 'step'; lr: number; stepSize: number; gamma: number; warmupEpochs?: number; warmupFrom?: number }
  | {
      kind: 'multistep';
      lr: number;
      milestones: readonly number[];
      gamma: number;
      warmupEpochs?: number;
      warmupFrom?: number;
    }
  | {
      kind: 'cosine';
      lr: number;
      epochs: number;
      minLr?: number;
      warmupEpochs?: number;
      warmupFrom?: number;
    };

/** Learning rate at `epoch` (0-based, fractional: epoch + step/stepsPerEpoch). */
export function lrAt(s: Schedule, epoch: number): number {
  const warm = s.warmupEpochs ?? 0;
  if (warm > 0 && epoch < warm) {
    const from = s.warmupFrom ?? 0;
    return s.lr * (from + (1 - from) * (epoch / warm));
  }
  switch (s.kind) {
    case 'constant':
      return s.lr;
    case 'step':
      return s.lr * s.gamma ** Math.floor(epoch / s.stepSize);
    case 'multistep': {
      // Epoch-granular like MultiStepLR stepped once per epoch.
      const e = Math.floor(epoch);
      return s.lr * s.gamma ** s.milestones.filter((m) => e >= m).length;
    }
    case 'cosine': {
      const min = s.minLr ?? 0;
      const t = Math.min(Math.max((epoch - warm) / Math.max(s.epochs - warm, 1e-9), 0), 1);
      return min + (s.lr - min) * 0.5 * (1 + Math.cos(Math.PI * t));
    }
  }
}
