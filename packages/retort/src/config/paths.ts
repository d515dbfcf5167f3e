/**
 * Paths inside a config file are relative to that file's folder, not to wherever the command was
 * started, so a config works from any working directory and next to the files it names. A `run`
 * given as a bare name ("fmnist-resnet20") is a run folder under the runs root (`--runs`, default
 * runs/); with a slash it is a path like any other.
 */
import { isAbsolute, join, resolve } from 'node:path';

/** [section, key] of every config key that names a file or folder. */
const PATH_KEYS: readonly (readonly [string, string])[] = [
  ['data', 'dir'],
  ['model', 'module'],
  ['teacher', 'checkpoint'],
  ['teacher', 'stateDict'],
  ['teacher', 'run'],
  ['student', 'run'],
  ['teacher', 'onnx'],
  ['teacher', 'tfjs'],
];

/** True for a run name (no path separator, not '.' or '..'), which lives under the runs root. */
export function isRunName(run: string): boolean {
  return !run.includes('/') && !run.includes('\\') && run !== '.' && run !== '..';
}

/** Rewrites the relative paths of a parsed config file (in place) against `baseDir`. */
export function resolveConfigPaths(raw: Record<string, unknown>, baseDir: string): void {
  for (const [section, key] of PATH_KEYS) {
    const obj = raw[section];
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) continue;
    const rec = obj as Record<string, unknown>;
    const v = rec[key];
    if (typeof v !== 'string' || v === '' || isAbsolute(v)) continue;
    if (key === 'run' && isRunName(v)) continue;
    rec[key] = resolve(baseDir, v);
  }
}

/** The folder of a `run` value: a run name under `runsRoot`, or the path itself. */
export function runFolder(run: string, runsRoot: string): string {
  return isRunName(run) ? join(runsRoot, run) : run;
}
