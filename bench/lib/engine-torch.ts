/** The PyTorch side of bench/engine.ts: finds a Python with torch and runs bench/torch_engine.py. */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Mode, ModelName } from './engine-native.js';

export type Layout = 'nchw' | 'channels_last';

/** One line of torch_engine.py's output. */
export interface TorchMeasurement {
  model: ModelName;
  mode: Mode;
  layout: Layout;
  img_per_s: number;
  ms_per_step: number;
  batch: number;
  steps: number;
  threads: number;
  torch: string;
}

const SCRIPT = fileURLToPath(new URL('../torch_engine.py', import.meta.url));

/**
 * Pythons to try, first that imports torch wins: $RETORT_PYTHON alone when set, else `python3` from
 * PATH, then Debian's /usr/bin/python3 (where `apt-get install python3-torch` puts torch even when
 * PATH starts with a pyenv or virtualenv python3).
 */
const CANDIDATES: readonly string[] = process.env['RETORT_PYTHON']
  ? [process.env['RETORT_PYTHON']]
  : ['python3', '/usr/bin/python3'];

let found: string | null | undefined;

/** The first candidate Python that can `import torch`, or null when none can. */
export function torchPython(): string | null {
  if (found === undefined) {
    found =
      CANDIDATES.find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) ?? null;
  }
  return found;
}

/** The Pythons that were (or will be) tried, for messages. */
export const pythonCandidates: readonly string[] = CANDIDATES;

/**
 * The environment for the Python child: OMP_NUM_THREADS = `threads`, and without the
 * OMP_WAIT_POLICY that the native backend puts into this process's env (PyTorch runs with its
 * default policy, as a user would run it).
 */
function childEnv(threads: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads) };
  delete env['OMP_WAIT_POLICY'];
  return env;
}

export interface TorchRunOptions {
  model: ModelName;
  mode: Mode;
  layouts: readonly Layout[];
  /** Time steps until this many seconds have passed (at least one step). */
  seconds: number;
  warmup: number;
  batch: number;
  threads: number;
}

/** Runs torch_engine.py once (one process for the given layouts); resolves with its measurements. */
export function runTorch(o: TorchRunOptions): Promise<TorchMeasurement[]> {
  const python = torchPython();
  if (python === null)
    return Promise.reject(new Error(`no Python with torch among ${CANDIDATES.join(', ')}`));
  const layout = o.layouts.length === 1 ? o.layouts[0]! : 'all';
  const args = [SCRIPT, '--model', o.model, '--mode', o.mode, '--layout', layout];
  args.push('--seconds', String(o.seconds), '--warmup', String(o.warmup), '--batch', String(o.batch));
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, { env: childEnv(o.threads), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    child.on('error', (e) => reject(new Error(`could not start ${python} ${SCRIPT}: ${e.message}`)));
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`${python} ${args.join(' ')} exited with ${code}:\n${err.trim()}`));
        return;
      }
      const lines = out.split('\n').filter((l) => l.trim().startsWith('{'));
      if (lines.length === 0) reject(new Error(`${SCRIPT} printed no measurement:\n${out}${err}`));
      else resolve(lines.map((l) => JSON.parse(l) as TorchMeasurement));
    });
  });
}
