/**
 * Run folders: runs/<name>/ with config.json (the resolved experiment), metrics.jsonl, checkpoints/,
 * model.ckpt (final weights) and results.json. An existing run is never overwritten unless the
 * user passes --force (which moves it aside to <name>.replaced-<time>, so nothing is lost) or
 * --resume (which continues it).
 */
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';

export interface RunDirOptions {
  force?: boolean;
  resume?: boolean;
}

/** Creates (or reopens with resume) the run folder and returns its path. */
export function prepareRunDir(root: string, name: string, config: unknown, opts: RunDirOptions = {}): string {
  const dir = resolve(root, name);
  if (existsSync(dir)) {
    if (opts.resume) {
      const cfgPath = join(dir, 'config.json');
      if (existsSync(cfgPath)) {
        const old = readFileSync(cfgPath, 'utf8');
        if (old !== `${JSON.stringify(config, null, 2)}\n`) {
          throw new Error(
            `--resume: ${cfgPath} differs from the experiment given now; resume with the same config`,
          );
        }
      }
      return dir;
    }
    if (!opts.force)
      throw new Error(
        `run folder ${dir} exists: pass --resume to continue it or --force to start over (the old one is kept aside)`,
      );
    renameSync(dir, `${dir}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  } else if (opts.resume) {
    throw new Error(`--resume: run folder ${dir} does not exist`);
  }
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  return dir;
}

/** Writes results.json atomically. */
export function writeResults(dir: string, results: unknown): void {
  writeFileAtomic(join(dir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
}
