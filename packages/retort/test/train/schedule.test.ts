import assert from 'node:assert/strict';
import { it } from 'node:test';
import { lrAt } from '../../src/train/schedule.js';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

it('multistep matches MultiStepLR (RepDistiller: 0.05, x0.1 at 150/180/210)', () => {
  const s = { kind: 'multistep', lr: 0.05, milestones: [150, 180, 210], gamma: 0.1 } as const;
  close(lrAt(s, 0), 0.05);
  close(lrAt(s, 149.99), 0.05);
  close(lrAt(s, 150), 0.005);
  close(lrAt(s, 185), 0.0005);
  close(lrAt(s, 239), 0.00005);
});

it('step, cosine, warm-up', () => {
  close(lrAt({ kind: 'step', lr: 1, stepSize: 10, gamma: 0.5 }, 25), 0.25);
  const c = { kind: 'cosine', lr: 0.1, epochs: 10, minLr: 0.001 } as const;
  close(lrAt(c, 0), 0.1);
  close(lrAt(c, 5), 0.001 + (0.1 - 0.001) * 0.5);
  close(lrAt(c, 10), 0.001);
  const w = { kind: 'cosine', lr: 0.1, epochs: 10, warmupEpochs: 2 } as const;
  close(lrAt(w, 0), 0);
  close(lrAt(w, 1), 0.05);
  close(lrAt(w, 2), 0.1);
  close(lrAt({ kind: 'constant', lr: 0.2, warmupEpochs: 4, warmupFrom: 0.5 }, 2), 0.15);
});
