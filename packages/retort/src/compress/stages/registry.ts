/**
 * The compression stages, in the order a pipeline runs them (registry: util/registry.ts). Order
 * matters, as each stage works on what the ones before left: pruning decides which weights exist,
 * factorization works on the pruned layers, weight sharing on the final layer shapes, and
 * quantization comes last because its grid is of the final weights.
 */
import { createRegistry } from '../../util/registry.js';
import { cluster } from './cluster.js';
import { hash } from './hash.js';
import { lottery } from './lottery.js';
import { lowrank } from './lowrank.js';
import { mixedPrecision } from './mixed-precision.js';
import { pruneMagnitude } from './prune-magnitude.js';
import { pruneStructured } from './prune-structured.js';
import { quantizePtq } from './quantize-ptq.js';
import { quantizeQat } from './quantize-qat.js';
import { rigl } from './rigl.js';
import { tucker } from './tucker.js';
import type { AnyStageDescriptor, StageDescriptor } from './types.js';

const registry = createRegistry<AnyStageDescriptor>('compression stage');
/** Names in run order (the registry lists them sorted). */
const order: string[] = [];

/**
 * Adds a stage, last or before the stage named `before`; a name already taken or an unknown
 * `before` throws. The stage runs in every pipeline whose config has its `key` (and `when`).
 */
export function registerStage<C>(d: StageDescriptor<C>, opts: { before?: string } = {}): void {
  const at = opts.before === undefined ? order.length : order.indexOf(stageByName(opts.before).name);
  registry.add(d.name, d as AnyStageDescriptor);
  order.splice(at, 0, d.name);
}

registerStage(pruneMagnitude);
registerStage(pruneStructured);
registerStage(lottery);
registerStage(rigl);
registerStage(lowrank);
registerStage(tucker);
registerStage(hash);
registerStage(cluster);
registerStage(mixedPrecision);
registerStage(quantizePtq);
registerStage(quantizeQat);

/** The stage called `name`; throws naming the known ones when there is none. */
export function stageByName(name: string): AnyStageDescriptor {
  return registry.get(name);
}

/** Every registered stage, in run order. */
export function stages(): AnyStageDescriptor[] {
  return order.map((n) => registry.get(n));
}

/** A stage a pipeline runs, with its config section parsed by the stage's schema. */
export interface PlannedStage {
  readonly stage: AnyStageDescriptor;
  readonly config: unknown;
}

/**
 * The stages a pipeline config asks for, in run order. Throws, naming the pipeline, when a section
 * fails its stage's schema or matches no stage, and when a stage would undo an earlier one
 * (StageDescriptor.refusesAfter): before anything runs, so no time is spent on a refused pipeline.
 */
export function planStages(cfg: Readonly<Record<string, unknown>>, pipeline: string): PlannedStage[] {
  const fail = (why: string): never => {
    throw new Error(`compress '${pipeline}': ${why}`);
  };
  const all = stages();
  const plan: PlannedStage[] = [];
  for (const stage of all) {
    const section = cfg[stage.key];
    if (section === undefined || !matches(section, stage.when)) continue;
    const r = stage.schema.safeParse(section);
    if (!r.success)
      fail(
        `${stage.key} (stage ${stage.name}): ${r.error.issues.map((i) => `${[stage.key, ...i.path].join('.')}: ${i.message}`).join('; ')}`,
      );
    plan.push({ stage, config: r.data });
  }
  for (const key of new Set(all.map((s) => s.key))) {
    if (cfg[key] === undefined || plan.some((p) => p.stage.key === key)) continue;
    const candidates = all.filter((s) => s.key === key).map((s) => `${s.name} (${whenText(s)})`);
    fail(`${key}: no stage runs this section (stages of ${key}: ${candidates.join(', ')})`);
  }
  for (const [i, { stage }] of plan.entries())
    for (const [earlier, why] of Object.entries(stage.refusesAfter ?? {})) {
      stageByName(earlier); // a misspelt name in a descriptor fails here, not silently never
      if (plan.slice(0, i).some((p) => p.stage.name === earlier)) fail(why);
    }
  return plan;
}

function matches(section: unknown, when: Readonly<Record<string, string>> | undefined): boolean {
  if (when === undefined) return true;
  if (typeof section !== 'object' || section === null) return false;
  const s = section as Readonly<Record<string, unknown>>;
  return Object.entries(when).every(([k, v]) => s[k] === v);
}

function whenText(s: AnyStageDescriptor): string {
  const w = Object.entries(s.when ?? {});
  return w.length === 0 ? 'any' : w.map(([k, v]) => `${k} ${v}`).join(', ');
}
