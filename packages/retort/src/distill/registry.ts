/**
 * Name -> implementation tables. One generic registry for every kind of pluggable thing (losses
 * here; schemes, models, teachers alike): a misspelt name fails loudly and lists the known ones.
 */
import { ce } from './losses/ce.js';
import { cosine } from './losses/cosine.js';
import { dkd } from './losses/dkd.js';
import { kd } from './losses/kd.js';
import { regressor } from './losses/regressor.js';
import type { AnyLossDescriptor } from './losses/types.js';

export interface Registry<T> {
  /** What the entries are, for error messages ("distillation loss"). */
  readonly kind: string;
  /** Adds an entry; a name given twice is a programming error and throws. */
  add(name: string, entry: T): Registry<T>;
  /** The entry called `name`; throws naming the known ones when there is none. */
  get(name: string): T;
  has(name: string): boolean;
  /** Known names, sorted. */
  list(): string[];
}

export function createRegistry<T>(kind: string): Registry<T> {
  const entries = new Map<string, T>();
  const reg: Registry<T> = {
    kind,
    add(name, entry) {
      if (entries.has(name)) throw new Error(`${kind} '${name}' is registered twice`);
      entries.set(name, entry);
      return reg;
    },
    get(name) {
      const e = entries.get(name);
      if (e === undefined) {
        throw new Error(`unknown ${kind} '${name}' (known: ${reg.list().join(', ') || 'none'})`);
      }
      return e;
    },
    has: (name) => entries.has(name),
    list: () => [...entries.keys()].sort(),
  };
  return reg;
}

/** Distillation losses by the name experiment files use (`losses: [{ name: dkd, beta: 8 }]`). */
export const lossRegistry = createRegistry<AnyLossDescriptor>('distillation loss')
  .add(ce.name, ce)
  .add(kd.name, kd)
  .add(dkd.name, dkd)
  .add(cosine.name, cosine)
  .add(regressor.name, regressor);
