/** Loads an experiment file (YAML or JSON), applies `--set key=value` overrides, validates it. */

import { dirname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { RetortError } from '../util/errors.js';
import { readFileBounded } from '../util/read.js';
import { parseOrThrow } from './errors.js';
import { type Experiment, experimentSchema } from './experiment.js';
import { resolveConfigPaths } from './paths.js';

/** Reads and parses a YAML/JSON file into a plain value; errors name the file. */
export function readConfigFile(path: string): unknown {
  // Configs are a few KB; a megabyte cap keeps a wrong path (a dataset, /dev/zero) from loading.
  const text = readFileBounded(path, 1024 ** 2, 'config file').toString('utf8');
  try {
    return path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new RetortError(
      `${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`,
    );
  }
}

/**
 * Applies one `a.b[2].c=value` override; the value is read as YAML (so numbers, booleans, lists and
 * objects work). Intermediate objects are created; array indices must exist.
 */
export function applyOverride(target: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new RetortError(`--set ${assignment}: expected key=value`);
  const keyPath = assignment.slice(0, eq);
  const value = parseYaml(assignment.slice(eq + 1)) as unknown;
  const tokens = [...keyPath.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) =>
    m[2] !== undefined ? { index: Number(m[2]) } : { key: m[1]! },
  );
  let cur: unknown = target;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const last = i === tokens.length - 1;
    if ('index' in t) {
      if (!Array.isArray(cur) || t.index >= cur.length)
        throw new RetortError(`--set ${keyPath}: no element [${t.index}]`);
      if (last) cur[t.index] = value;
      else cur = cur[t.index];
      continue;
    }
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur))
      throw new RetortError(`--set ${keyPath}: '${t.key}' is not inside an object`);
    const obj = cur as Record<string, unknown>;
    if (last) obj[t.key] = value;
    else {
      const nextIsIndex = 'index' in tokens[i + 1]!;
      if (obj[t.key] === undefined && !nextIsIndex) obj[t.key] = {};
      cur = obj[t.key];
    }
  }
}

/**
 * A config file's top-level mapping with its relative paths resolved against the file's folder,
 * then `key=value` overrides applied (their paths stay relative to the working directory, as a
 * shell user expects of a command-line value).
 */
export function readConfigMapping(path: string, overrides: readonly string[] = []): Record<string, unknown> {
  const raw = readConfigFile(path);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new RetortError(`${path}: expected a mapping at the top level`);
  const rec = raw as Record<string, unknown>;
  resolveConfigPaths(rec, dirname(path));
  for (const o of overrides) applyOverride(rec, o);
  return rec;
}

/** The validated experiment from `path` plus overrides. */
export function loadExperiment(path: string, overrides: readonly string[] = []): Experiment {
  const raw = readConfigMapping(path, overrides);
  return parseOrThrow(experimentSchema, raw, path);
}
