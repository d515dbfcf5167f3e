/**
 * Run folders: runs/<name>/ with config.json (the resolved experiment), metrics.jsonl, checkpoints/,
 * model.ckpt (final weights) and results.json. An existing run is never overwritten unless the
 * user passes --force (which moves it aside to <name>.replaced-<time>, so nothing is lost) or
 * --resume (which continues it).
 *
 * One writer per run folder: `lock` holds the writing process's pid and host and is created
 * exclusively (O_EXCL) before anything else is written, so a second `retort train` of the same run
 * fails at once naming the holder. A lock left by a process that no longer exists on this host is
 * taken over with a warning; a lock from another host is never taken over (its pid means nothing
 * here): the message says which file to remove.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { RetortError } from '../util/errors.js';

export interface RunDirOptions {
  force?: boolean;
  resume?: boolean;
  /** Where a taken-over stale lock is reported (default: stderr). */
  log?: (line: string) => void;
}

/** Run names are folder names: letters, digits, '.', '_' and '-', not starting with '.' (no '..'). */
export const RUN_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/** Throws unless `name` can only ever name one folder directly under the runs root. */
export function checkRunName(name: string): void {
  if (!RUN_NAME.test(name) || name.length > 200)
    throw new RetortError(
      `run name '${name.replace(/[^\x20-\x7e]/g, '?')}': use letters, digits, '.', '_' and '-' only, not starting with '.' (it names a folder under the runs root)`,
    );
}

interface LockInfo {
  pid: number;
  host: string;
  started: string;
}

/** Whether process `pid` exists on this host (EPERM: it exists, owned by someone else). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(path: string): LockInfo | null {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockInfo>;
    if (Number.isInteger(v.pid) && typeof v.host === 'string') return v as LockInfo;
  } catch {
    // unreadable or half-written: treated as no information below
  }
  return null;
}

/** The error for a run folder another live process (or another host) holds. */
function inUse(dir: string, path: string, other: LockInfo): RetortError {
  const remote = other.host !== hostname();
  return new RetortError(
    `run folder ${dir} is in use by pid ${other.pid} on ${other.host} since ${other.started}; wait for it to finish${remote ? `, or remove ${path} if that run is gone` : ''}`,
    { file: path },
  );
}

const held = new Set<string>();
let exitHook = false;

/** Releases every lock this process holds (on exit, whatever the cause short of SIGKILL). */
function releaseAll(): void {
  for (const p of held) releaseRunLock(p);
}

/**
 * Takes `dir/lock` for this process, or throws naming the holder. A stale lock (a dead pid on this
 * host, or an unreadable file) is taken over with a warning.
 */
export function acquireRunLock(
  dir: string,
  log: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): string {
  const path = join(dir, 'lock');
  const me: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, `${JSON.stringify(me)}\n`, { flag: 'wx' });
      held.add(path);
      if (!exitHook) {
        exitHook = true;
        process.on('exit', releaseAll);
      }
      return path;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const other = readLock(path);
    if (other && other.pid === process.pid && other.host === me.host)
      throw new RetortError(`run folder ${dir} is already open in this process`, { file: path });
    if (other && (other.host !== me.host || alive(other.pid))) throw inUse(dir, path, other);
    log(
      `warning: ${path}: ${other ? `stale lock of pid ${other.pid} (no such process on ${me.host})` : 'unreadable lock'}; taking it over`,
    );
    rmSync(path, { force: true });
  }
  throw new RetortError(`run folder ${dir}: could not take ${path} (another process took it first)`, {
    file: path,
  });
}

/**
 * Throws the lock holder's error if another live process holds `root/name/lock`; a cheap check the
 * CLI runs before loading the compute libraries, so a second writer fails in well under a second.
 * (The lock itself is taken by prepareRunDir.)
 */
export function assertRunFree(root: string, name: string): void {
  checkRunName(name);
  const dir = resolve(root, name);
  const path = join(dir, 'lock');
  const other = existsSync(path) ? readLock(path) : null;
  if (other && other.pid !== process.pid && (other.host !== hostname() || alive(other.pid)))
    throw inUse(dir, path, other);
}

/** Removes the lock at `path` if this process holds it. */
export function releaseRunLock(path: string): void {
  if (!held.has(path)) return;
  held.delete(path);
  const info = readLock(path);
  if (info && info.pid === process.pid) rmSync(path, { force: true });
}

/**
 * Creates (or reopens with resume) the run folder, takes its lock and returns its path; call
 * `releaseRunLock(join(dir, 'lock'))` when done (it is also released at exit). The config is
 * validated before this is called, so --force moves a finished run aside only for a valid one; a
 * run another process is writing is never moved aside.
 */
export function prepareRunDir(root: string, name: string, config: unknown, opts: RunDirOptions = {}): string {
  checkRunName(name);
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const dir = resolve(root, name);
  if (existsSync(dir)) {
    if (opts.resume) {
      acquireRunLock(dir, log);
      const cfgPath = join(dir, 'config.json');
      if (existsSync(cfgPath)) {
        const old = readFileSync(cfgPath, 'utf8');
        if (old !== `${JSON.stringify(config, null, 2)}\n`) {
          releaseRunLock(join(dir, 'lock'));
          throw new RetortError(
            `--resume: ${cfgPath} differs from the experiment given now; resume with the same config`,
            { file: cfgPath },
          );
        }
      }
      return dir;
    }
    if (!opts.force)
      throw new RetortError(
        `run folder ${dir} exists: pass --resume to continue it or --force to start over (the old one is kept aside)`,
        { file: dir },
      );
    // Hold the old folder's lock while moving it, so that a run still writing there is not moved.
    const lock = acquireRunLock(dir, log);
    const aside = `${dir}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    renameSync(dir, aside);
    held.delete(lock);
    rmSync(join(aside, 'lock'), { force: true });
  } else if (opts.resume) {
    throw new RetortError(`--resume: run folder ${dir} does not exist`, { file: dir });
  }
  mkdirSync(dir, { recursive: true });
  acquireRunLock(dir, log);
  writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  return dir;
}

/** Writes results.json atomically. */
export function writeResults(dir: string, results: unknown): void {
  writeFileAtomic(join(dir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
}
