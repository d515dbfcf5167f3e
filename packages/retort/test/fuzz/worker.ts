/**
 * One fuzz worker: `worker.ts <target> <seed> <from> <to> <dir>` runs cases [from, to) of one
 * target and prints a line per case as soon as it ends (`C <i> <accepted|refused|foreign> [msg]`),
 * so that the parent (run.ts) can tell which case a crash or a hang belongs to; then `M <maxRSS KiB>`.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { RetortError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { fixPngCrcs, mutate } from './mutate.js';
import { TARGETS } from './targets.js';

const [name, seedArg, fromArg, toArg, dir] = process.argv.slice(2);
const target = TARGETS.find((t) => t.name === name);
if (!target || dir === undefined) throw new Error(`usage: worker.ts <target> <seed> <from> <to> <dir>`);
const seed = Number(seedArg);
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const valid = target.setup(dir);
const out = (line: string) => process.stdout.write(`${line}\n`);
// Collect garbage once RSS has grown, so that the peak measures one file's allocations, not the
// garbage of many cases the collector has not reached yet (run.ts starts workers with --expose-gc).
const gc = (globalThis as { gc?: () => void }).gc;
let rssMark = process.memoryUsage.rss();
for (let i = Number(fromArg); i < Number(toArg); i++) {
  // Each case has its own generator, so a restart after a crash replays nothing and skips nothing.
  const r = new Rng((seed * 1_000_003 + i) >>> 0);
  const file = target.file(dir, r);
  target.setup(dir); // every other file back to its valid bytes
  const bytes = mutate(valid, r, target.text);
  writeFileSync(file, target.png && r.int(2) === 0 ? fixPngCrcs(bytes) : bytes);
  try {
    await target.read(dir, file);
    out(`C ${i} accepted`);
  } catch (e) {
    if (e instanceof RetortError) out(`C ${i} refused`);
    else
      out(
        `C ${i} foreign ${JSON.stringify(String(e instanceof Error ? `${e.name}: ${e.message}` : e).slice(0, 200))}`,
      );
  }
  if (gc && process.memoryUsage.rss() > rssMark + 64 * 1024 ** 2) {
    gc();
    rssMark = process.memoryUsage.rss();
  }
}
out(`M ${process.resourceUsage().maxRSS}`);
