/** Optimizers and learning-rate schedules from their config sections. */
import type { OptimizerConfig, ScheduleConfig } from '../config/experiment.js';
import { Adam, SGD } from './optimizers.js';
import type { Schedule } from './schedule.js';
import type { LrOptimizer } from './trainer.js';

export function makeOptimizer(c: OptimizerConfig): LrOptimizer {
  if (c.name === 'sgd')
    return new SGD({ lr: c.lr, momentum: c.momentum, nesterov: c.nesterov, weightDecay: c.weightDecay });
  return new Adam({
    lr: c.lr,
    beta1: c.beta1,
    beta2: c.beta2,
    eps: c.eps,
    weightDecay: c.weightDecay,
    decoupled: c.name === 'adamw',
  });
}

export function makeSchedule(c: ScheduleConfig, lr: number, epochs: number): Schedule {
  const warm = { warmupEpochs: c.warmupEpochs, warmupFrom: c.warmupFrom };
  switch (c.kind) {
    case 'constant':
      return { kind: 'constant', lr, ...warm };
    case 'step':
      return { kind: 'step', lr, stepSize: c.stepSize, gamma: c.gamma, ...warm };
    case 'multistep':
      return { kind: 'multistep', lr, milestones: c.milestones, gamma: c.gamma, ...warm };
    case 'cosine':
      return { kind: 'cosine', lr, epochs, minLr: c.minLr, ...warm };
  }
}
