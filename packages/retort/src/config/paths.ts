/**
 * Paths inside a config file are relative to that file's folder, not to wherever the command was
 * started, so a config works from any working directory and next to the files it names. A `run`
 * given as a bare name ("fmnist-resnet20") is a run folder under the runs root (`--runs`, default
 * runs/); with a slash it is a path like any other.
 */
import { isAbsolute, join, resolve } from 'node:path';

/** Key paths of every config key that names a file or folder. */
const PATH_KEYS: readonly (readonly string[])[] = [
  ['data', 'dir'],
  ['data', 'views', 'student', 'dir'],
  ['data', 'views', 'teacher', 'dir'],
  ['model', 'module'],
  ['model', 'onnx'],
  ['model', 'tfjs'],
  ['teacher', 'checkpoint'],
  ['teacher', 'stateDict'],
  ['teacher', 'run'],
  ['teacher', 'onnx'],
  ['teacher', 'tfjs'],
  ['teacher', 'model', 'module'],
  ['student', 'run'],
  ['lottery', 'rewindFrom'],
];

/** True for a run name (no path separator, not '.' or '..'), which lives under the runs root. */
export function isRunName(run: string): boolean {
  return !run.includes('/') && !run.includes('\\') && run !== '.' && run !== '..';
}

/** Rewrites the relative paths of a parsed config file (in place) against `baseDir`. */
export function resolveConfigPaths(raw: Record<string, unknown>, baseDir: string): void {
  for (const keys of PATH_KEYS) {
    let rec: Record<string, unknown> | undefined = raw;
    for (const k of keys.slice(0, -1)) {
      const next: unknown = rec?.[k];
      rec =
        next !== null && typeof next === 'object' && !Array.isArray(next)
          ? (next as Record<string, unknown>)
          : undefined;
    }
    const key = keys.at(-1)!;
    if (rec === undefined) continue;
    const v = rec[key];
    if (typeof v !== 'string' || v === '' || isAbsolute(v)) continue;
    if (key === 'run' && isRunName(v)) continue;
    rec[key] = resolve(baseDir, v);
  }
  // A multi-teacher scheme's teachers are teacher sections: `scheme.teachers[i].onnx`, ...
  const sch = raw['scheme'];
  const teachers =
    sch !== null && typeof sch === 'object' ? (sch as Record<string, unknown>)['teachers'] : undefined;
  if (Array.isArray(teachers))
    for (const t of teachers)
      if (t !== null && typeof t === 'object' && !Array.isArray(t))
        resolveConfigPaths({ teacher: t }, baseDir);
  // An online scheme's other peers and a chain's assistants are models too: `scheme.peers[i].module`,
  // `scheme.assistants[i].module`.
  const scheme = raw['scheme'];
  for (const key of ['peers', 'assistants']) {
    const models =
      scheme !== null && typeof scheme === 'object' ? (scheme as Record<string, unknown>)[key] : undefined;
    if (!Array.isArray(models)) continue;
    for (const model of models) {
      if (model === null || typeof model !== 'object') continue;
      const m = (model as Record<string, unknown>)['module'];
      if (typeof m === 'string' && m !== '' && !isAbsolute(m))
        (model as Record<string, unknown>)['module'] = resolve(baseDir, m);
    }
  }
}

/** The folder of a `run` value: a run name under `runsRoot`, or the path itself. */
export function runFolder(run: string, runsRoot: string): string {
  return isRunName(run) ? join(runsRoot, run) : run;
}
