/**
 * Name -> implementation tables. One generic registry for every kind of pluggable thing (losses,
 * models, schemes, teachers): a misspelt name fails loudly and lists the known ones.
 */
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
