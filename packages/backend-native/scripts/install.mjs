// npm install step of retort-kd-native: builds the oneDNN addon (build/<level>/retort_native.node)
// when the toolchain and Debian's libdnnl-dev are present, and otherwise says in one line what to
// install. It never fails the install: without the addon every kernel runs in JavaScript (slow but
// right), and `nativeUnavailableReason()` says why. Nothing is downloaded.
//
// Environment: RETORT_NATIVE=0 skips the build; RETORT_ISAS="x86-64-v3" builds only the listed
// x86-64 levels (default: v2, v3 and v4, so that the folder can be copied to any x86-64 machine).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (line) => process.stderr.write(`retort-kd-native: ${line}\n`);

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function main() {
  if (process.env.RETORT_NATIVE === '0')
    return say('RETORT_NATIVE=0: addon not built (JavaScript kernels only)');
  if (process.platform !== 'linux') return say(`no addon on ${process.platform}: JavaScript kernels only`);
  const missing = [];
  if (!have('g++')) missing.push('g++');
  if (!have('make')) missing.push('make');
  if (!['/usr/include/dnnl.hpp', '/usr/include/oneapi/dnnl/dnnl.hpp'].some((p) => existsSync(p)))
    missing.push('libdnnl-dev');
  if (missing.length > 0)
    return say(
      `addon not built, missing ${missing.join(', ')}: run \`sudo apt-get install ${missing.join(' ')}\` then \`npm rebuild retort-kd-native\` (until then kernels run in JavaScript, much slower)`,
    );
  const args = ['-s', `-j${availableParallelism()}`, '-C', pkg];
  if (process.env.RETORT_ISAS) args.push(`ISAS=${process.env.RETORT_ISAS}`);
  if (spawnSync('make', ['-q', ...args], { stdio: 'ignore' }).status === 0) return undefined;
  say('building the oneDNN addon (about a minute per x86-64 level on 2 cores)');
  const t0 = Date.now();
  const r = spawnSync('make', args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0)
    return say(
      `addon build failed (make exited with ${r.status ?? r.signal}; output above): kernels run in JavaScript until \`npm rebuild retort-kd-native\` succeeds`,
    );
  say(`addon built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return undefined;
}

main();
