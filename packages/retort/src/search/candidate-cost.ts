/**
 * What a candidate costs, for a search's constraints and its Pareto front: parameters and MACs
 * counted from the built model (measure/model-stats.ts's conventions), and latency predicted by the
 * machine's latency table (latency-table.ts) at one setting, measuring the units the table lacks
 * first. Building a model is the slow part (tens of milliseconds); the search caches costs by key.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { layerCost } from '../measure/model-stats.js';
import type { EnsureProgress, LatencySetting, LatencyTable, MeasureFn } from './latency-table.js';
import type { Cost } from './search-history.js';
import type { Candidate, SearchSpace } from './space-config.js';

export interface CostOptions {
  table: LatencyTable;
  /** The runtime and batch size whose latency is predicted. */
  setting: LatencySetting;
  /** Times units the table lacks (LatencyTable.measurer, or a fake in tests). */
  measure: MeasureFn;
  /** After each unit measured into the table. */
  onMeasured?: (p: EnsureProgress) => void;
}

/** Cost of `model`: predicted latency at `opts.setting` (ms), parameters, MACs per image. */
export async function modelCost(model: tfl.LayersModel, opts: CostOptions): Promise<Cost> {
  await opts.table.ensure([model], [opts.setting], opts.measure, opts.onMeasured);
  const latencyMs = opts.table.predict(model, opts.setting).ms;
  const macs = model.layers.reduce((a, l) => a + layerCost(l).macs, 0);
  return { latencyMs, params: model.countParams(), macs };
}

/** The cost function of a search over `space` for inputs [H, W, C] and `numClasses` classes. */
export function candidateCost(
  space: SearchSpace,
  shape: { inputShape: readonly [number, number, number]; numClasses: number },
  opts: CostOptions,
): (c: Candidate) => Promise<Cost> {
  return async (c) => {
    // Seeded: the weights do not change the cost, and an unseeded build would draw from the global Rng.
    const model = space.build(c, { inputShape: shape.inputShape, numClasses: shape.numClasses, seed: 0 });
    try {
      return await modelCost(model, opts);
    } finally {
      model.dispose();
    }
  };
}
