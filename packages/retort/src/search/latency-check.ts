/**
 * How close a latency table's predictions come to what whole models measure: the check to run
 * before a search's latency budget relies on the table, on models other than the ones its overhead
 * was fitted to. Errors are relative, as the budget is.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { median } from '../measure/latency.js';
import type { LatencySetting, MeasureFn } from './latency-measure.js';
import { DEFAULT_LATENCY_SETTINGS, type LatencyTable } from './latency-table.js';

export interface CheckRow {
  model: string;
  measuredMs: number;
  predictedMs: number;
  /** (predicted - measured) / measured. */
  relError: number;
}

export interface CheckResult {
  setting: LatencySetting;
  rows: CheckRow[];
  /** Median of |relError| over the models. */
  medianAbsRelError: number;
  maxAbsRelError: number;
}

/** Relative errors of predicted against measured milliseconds, and their median and maximum. */
export function summarizeErrors(
  setting: LatencySetting,
  rows: readonly Omit<CheckRow, 'relError'>[],
): CheckResult {
  const full = rows.map((r) => ({ ...r, relError: (r.predictedMs - r.measuredMs) / r.measuredMs }));
  const abs = full.map((r) => Math.abs(r.relError));
  return { setting, rows: full, medianAbsRelError: median(abs), maxAbsRelError: Math.max(...abs) };
}

/**
 * For each setting, each model's measured whole-model latency against the table's prediction
 * (measuring any key the table lacks first). Models are timed one after the other with `measure`.
 */
export async function checkTable(
  models: readonly tfl.LayersModel[],
  table: LatencyTable,
  opts: { settings?: readonly LatencySetting[]; measure: MeasureFn; names?: readonly string[] },
): Promise<CheckResult[]> {
  const settings = opts.settings ?? DEFAULT_LATENCY_SETTINGS;
  if (models.length === 0) throw new Error('latency table: checkTable needs at least one model');
  await table.ensure(models, settings, opts.measure);
  const results: CheckResult[] = [];
  for (const setting of settings) {
    const rows: Omit<CheckRow, 'relError'>[] = [];
    for (const [i, m] of models.entries()) {
      const predictedMs = table.predict(m, setting).ms;
      const measuredMs = await opts.measure({ setting, what: 'model', key: undefined, model: () => m });
      rows.push({ model: opts.names?.[i] ?? m.name, measuredMs, predictedMs });
    }
    results.push(summarizeErrors(setting, rows));
  }
  return results;
}
