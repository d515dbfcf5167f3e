/**
 * The import graph of the sources: no cycles, imports point down the layers only, and bench/ uses
 * the public API alone. Layers, top to bottom (a folder may import its own layer and any below):
 *   index.ts -> cli/ -> run/ -> distill/ compress/ export/ report/ search/
 *   -> train/ taps/ models/ data/ measure/ teachers/ -> config/ -> util/
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');
const RANK: Record<string, number> = {
  util: 0,
  config: 1,
  train: 2,
  taps: 2,
  models: 2,
  data: 2,
  measure: 2,
  teachers: 2,
};
for (const d of ['distill', 'compress', 'export', 'report', 'search']) RANK[d] = 3;
Object.assign(RANK, { run: 4, cli: 5, 'index.ts': 6 });

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every module specifier a file imports or re-exports, statically or with import(). */
export function specifiers(text: string): string[] {
  const re =
    /(?:^|\n)\s*(?:import|export)\s[^'";]*?from\s*'([^']+)'|(?:^|\n)\s*import\s*'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/g;
  return [...text.matchAll(re)].map((m) => (m[1] ?? m[2] ?? m[3])!);
}

/** file -> the files of the same tree it imports (relative specifiers, .js written for .ts). */
function graph(root: string): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of tsFiles(root)) {
    const deps = specifiers(readFileSync(f, 'utf8'))
      .filter((s) => s.startsWith('.'))
      .map((s) => resolve(dirname(f), s.replace(/\.js$/, '.ts')));
    g.set(f, deps);
  }
  return g;
}

/** The first import cycle found, as a list of files, or null. */
export function findCycle(g: Map<string, string[]>): string[] | null {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (f: string): string[] | null => {
    if (state.get(f) === 2) return null;
    if (state.get(f) === 1) return stack.slice(stack.indexOf(f)).concat(f);
    state.set(f, 1);
    stack.push(f);
    for (const d of g.get(f) ?? []) {
      const c = visit(d);
      if (c) return c;
    }
    stack.pop();
    state.set(f, 2);
    return null;
  };
  for (const f of g.keys()) {
    const c = visit(f);
    if (c) return c;
  }
  return null;
}

const layerOf = (src: string, f: string) => relative(src, f).split('/')[0]!;

describe('import graph', () => {
  for (const pkg of ['retort', 'backend-native']) {
    it(`packages/${pkg}/src has no import cycle`, () => {
      const src = join(repo, 'packages', pkg, 'src');
      const cycle = findCycle(graph(src));
      assert.equal(cycle?.map((f) => relative(src, f)).join(' -> ') ?? null, null);
    });
  }

  it('every import in packages/retort/src points down the layers', () => {
    const src = join(repo, 'packages', 'retort', 'src');
    const bad: string[] = [];
    for (const [f, deps] of graph(src)) {
      const from = layerOf(src, f);
      assert.ok(RANK[from] !== undefined, `src/${from} is in no layer: add it to RANK in this test`);
      for (const d of deps) {
        const to = layerOf(src, d);
        if (from !== to && RANK[to]! > RANK[from]!) bad.push(`${relative(src, f)} -> ${relative(src, d)}`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it('bench/ imports Retort only through its public packages', () => {
    const bench = join(repo, 'bench');
    const bad = tsFiles(bench)
      .filter((f) => !f.includes('/out/'))
      .flatMap((f) =>
        specifiers(readFileSync(f, 'utf8'))
          .filter((s) => s.includes('packages/') || s.includes('/src/'))
          .map((s) => `${relative(bench, f)}: ${s}`),
      );
    assert.deepEqual(bad, []);
  });

  it('the checks see what they must (a cycle, a dynamic import, a re-export)', () => {
    assert.deepEqual(
      specifiers(
        "import a from './a.js';\nexport { b } from '../b.js';\nconst c = await import('./c.js');\nimport './d.js';",
      ),
      ['./a.js', '../b.js', './c.js', './d.js'],
    );
    const g = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
    ]);
    assert.deepEqual(findCycle(g), ['a', 'b', 'c', 'a']);
    assert.equal(
      findCycle(
        new Map([
          ['a', ['b']],
          ['b', []],
        ]),
      ),
      null,
    );
  });
});
