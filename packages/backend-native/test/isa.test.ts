/**
 * The addon is portable: one file per x86-64 level (the Makefile), each containing only the
 * instructions of its level, and a loader that never picks a level the CPU lacks. Checked on the
 * machine code itself (objdump), so a stray -march=native or an AVX-512 loop leaking into a lower
 * level fails here on any CPU, not with SIGILL on someone else's.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { arch } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chooseAddon, nativeIsa } from '../src/binding.js';
import { cpuInfo, ISA_LEVELS, type IsaLevel, isaCapFromEnv, parseCpuinfo } from '../src/cpu.js';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const root = join(pkg, '..', '..');
const addonOf = (level: string) => join(pkg, 'build', level, 'retort_native.node');

// Real flag sets (abridged to what the levels need): Zen 3, and an AVX-512 + VNNI part.
const V2 = 'fpu sse sse2 ssse3 sse4_1 sse4_2 cx16 lahf_lm popcnt';
const ZEN3 = `${V2} avx avx2 fma bmi1 bmi2 f16c abm movbe xsave`;
const ZEN5 = `${ZEN3} avx512f avx512bw avx512cd avx512dq avx512vl avx512_vnni`;
const cpu = (flags: string, a = 'x64') => parseCpuinfo(`model name\t: test\nflags\t\t: ${flags}\n`, a);

/** Functions of a shared object and the instructions each uses, from `objdump -d`. */
function disassemble(file: string): Map<string, string[]> {
  const r = spawnSync('objdump', ['-d', '--no-show-raw-insn', file], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  assert.equal(r.status, 0, r.stderr);
  const fns = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of r.stdout.split('\n')) {
    const head = /^[0-9a-f]+ <(.+)>:$/.exec(line);
    if (head) {
      cur = [];
      fns.set(head[1]!, cur);
    } else if (cur && /^\s+[0-9a-f]+:\t/.test(line)) cur.push(line.split('\t').slice(1).join(' ').trim());
  }
  return fns;
}

// AVX-512 in any form: zmm registers, the extra xmm/ymm registers 16-31, mask registers,
// broadcasts and masking ({1toN}, {%k}), all of which need EVEX (AVX-512) encodings.
const AVX512 = /%zmm|%[xy]mm(1[6-9]|2\d|3[01])\b|%k[0-7]\b|\{1to\d+\}/;
// AVX or later: any VEX/EVEX instruction (all start with v and take xmm/ymm/zmm operands).
const AVX = /^v\w+\s.*%[xyz]mm/;

function offenders(fns: Map<string, string[]>, bad: RegExp): string[] {
  const out: string[] = [];
  for (const [fn, ins] of fns) {
    const hit = ins.find((i) => bad.test(i));
    if (hit) out.push(`${fn}: ${hit}`);
  }
  return out;
}

describe('addon levels: the machine code of each file', { skip: arch() !== 'x64' }, () => {
  const levels = ISA_LEVELS.filter((l) => existsSync(addonOf(l)));
  it('every level is built', () => {
    assert.deepEqual(levels, [...ISA_LEVELS], 'npm run build:addon builds x86-64-v2, v3 and v4');
  });
  it('the CPU probe is built for the baseline (no AVX) and answers from CPUID', () => {
    const probe = join(pkg, 'build', 'cpu_probe.node');
    assert.ok(existsSync(probe), `${probe} is built`);
    assert.deepEqual(offenders(disassemble(probe), AVX), []);
    const c = cpuInfo();
    assert.equal(c.source, 'cpuid');
    // The OS may hide flags (a VM here lists no 'abm'), never invent them: CPUID is never lower.
    const flagsOnly = parseCpuinfo(readFileSync('/proc/cpuinfo', 'utf8')).level;
    const rank = (l: IsaLevel | null) => (l === null ? -1 : ISA_LEVELS.indexOf(l));
    assert.ok(rank(c.level) >= rank(flagsOnly), `cpuid ${c.level} vs flags ${flagsOnly}`);
  });

  it('x86-64-v2 has no AVX at all; x86-64-v3 no AVX-512; x86-64-v4 uses AVX-512', () => {
    const v2 = disassemble(addonOf('x86-64-v2'));
    assert.ok(v2.size > 100, `${v2.size} functions`);
    assert.deepEqual(offenders(v2, AVX).slice(0, 5), []);
    const v3 = disassemble(addonOf('x86-64-v3'));
    assert.deepEqual(offenders(v3, AVX512).slice(0, 5), []);
    assert.ok(offenders(v3, /%ymm/).length > 10, 'the v3 file uses AVX2 (ymm) in its loops');
    // Only the file the loader picks on AVX-512 CPUs may hold AVX-512, and it does: MaxPoolGrad's
    // 16-float vectors and the elementwise loops.
    const v4 = offenders(disassemble(addonOf('x86-64-v4')), AVX512);
    assert.ok(v4.length > 10, `${v4.length} functions with AVX-512 in the v4 file`);
  });
});

describe('addon levels: the loader', () => {
  it('reads the level from /proc/cpuinfo flags', () => {
    assert.equal(cpu(V2).level, 'x86-64-v2');
    assert.equal(cpu(ZEN3).level, 'x86-64-v3');
    assert.equal(cpu(ZEN5).level, 'x86-64-v4');
    assert.equal(cpu(ZEN5.replace(' avx2', '')).level, 'x86-64-v2', 'a hole in v3 stops at v2');
    assert.equal(cpu('fpu sse sse2').level, null);
    assert.equal(cpu(ZEN5, 'arm64').level, null);
    assert.equal(cpu(ZEN5).vnni, true);
    assert.equal(cpu(ZEN3).vnni, false);
  });

  it('picks the highest built level the CPU has; never one above it', () => {
    const all = () => true;
    const pick = (
      c: ReturnType<typeof cpu>,
      env: NodeJS.ProcessEnv = {},
      built: (p: string) => boolean = all,
    ) => chooseAddon(c, env, built);
    assert.equal(pick(cpu(ZEN3)).level, 'x86-64-v3');
    assert.equal(pick(cpu(ZEN3)).path, addonOf('x86-64-v3'));
    assert.equal(pick(cpu(ZEN5)).level, 'x86-64-v4');
    assert.equal(pick(cpu(V2)).level, 'x86-64-v2');
    for (const flags of [V2, ZEN3, ZEN5])
      for (const c of [cpu(flags)])
        assert.ok(
          ISA_LEVELS.indexOf(pick(c).level as IsaLevel) <= ISA_LEVELS.indexOf(c.level!),
          `${c.level} got ${pick(c).level}`,
        );
    // A partial build: the best file at or below the CPU's level.
    assert.equal(pick(cpu(ZEN5), {}, (p) => !p.includes('x86-64-v4')).level, 'x86-64-v3');
    const none = pick(cpu(ZEN5), {}, () => false);
    assert.equal(none.level, null);
    assert.match(
      none.why,
      /x86-64-v4\/retort_native\.node is not built \(install g\+\+, make and libdnnl-dev, then run `npm rebuild retort-kd-native`/,
    );
    const old = pick(cpu('fpu sse sse2'));
    assert.equal(old.level, null);
    assert.match(old.why, /lacks x86-64-v2/);
    assert.equal(pick(cpu(ZEN5, 'arm64')).level, 'generic');
    // No flags readable (not Linux): the baseline.
    assert.equal(pick(parseCpuinfo('', 'x64')).level, 'x86-64-v2');
    assert.equal(pick(cpu(ZEN5), { RETORT_ADDON_PATH: '/x/y.node' }).path, '/x/y.node');
  });

  it('this process loaded the level chosen for it (the AVX2 pass of npm test runs x86-64-v3)', () => {
    const want = chooseAddon();
    assert.notEqual(want.level, null, want.why);
    assert.equal(nativeIsa, want.level === 'RETORT_ADDON_PATH' ? nativeIsa : want.level);
    if (process.env['ONEDNN_MAX_CPU_ISA'] === 'AVX2' && arch() === 'x64')
      assert.notEqual(nativeIsa, 'x86-64-v4');
  });

  it('caps the level by RETORT_MAX_ISA, else by ONEDNN_MAX_CPU_ISA; a bad value is an error', () => {
    const pick = (env: NodeJS.ProcessEnv) => chooseAddon(cpu(ZEN5), env, () => true).level;
    assert.equal(pick({ ONEDNN_MAX_CPU_ISA: 'AVX2' }), 'x86-64-v3');
    assert.equal(pick({ ONEDNN_MAX_CPU_ISA: 'avx512_core_vnni' }), 'x86-64-v4');
    assert.equal(pick({ ONEDNN_MAX_CPU_ISA: 'SSE41' }), 'x86-64-v2');
    assert.equal(pick({ ONEDNN_MAX_CPU_ISA: 'ALL' }), 'x86-64-v4');
    assert.equal(pick({ RETORT_MAX_ISA: 'avx2', ONEDNN_MAX_CPU_ISA: 'SSE41' }), 'x86-64-v3');
    assert.equal(pick({ RETORT_MAX_ISA: 'x86-64-v2' }), 'x86-64-v2');
    // A cap above the CPU does not lift it.
    assert.equal(chooseAddon(cpu(ZEN3), { RETORT_MAX_ISA: 'avx512' }, () => true).level, 'x86-64-v3');
    assert.throws(
      () => isaCapFromEnv({ RETORT_MAX_ISA: 'avx3' }),
      /RETORT_MAX_ISA must be one of .* got 'avx3'/,
    );
  });
});

// Each level this CPU can run, loaded in its own process, computes what the JS kernels compute.
describe('addon levels: every level this CPU has runs and agrees with cpu', {
  skip: arch() !== 'x64',
}, () => {
  const here = cpuInfo().level;
  const runnable = here ? ISA_LEVELS.slice(0, ISA_LEVELS.indexOf(here) + 1) : [];
  const script = `
    import * as tf from '@tensorflow/tfjs-core';
    import '@tensorflow/tfjs-layers';
    import { nativeAvailable, nativeIsa, nativeCallCounts } from 'retort-kd-native';
    const run = async (backend) => {
      await tf.setBackend(backend);
      const x = tf.randomNormal([2, 9, 9, 5], 0, 1, 'float32', 1);
      const w = tf.randomNormal([3, 3, 5, 7], 0, 1, 'float32', 2);
      const y = tf.relu(tf.add(tf.conv2d(x, w, 2, 'same'), tf.randomNormal([7], 0, 1, 'float32', 3)));
      const p = tf.maxPool(tf.mul(y, tf.exp(tf.neg(y))), 2, 1, 'valid');
      const g = tf.grad((v) => tf.sum(tf.maxPool(v, 2, 2, 'same')))(y);
      return [...p.dataSync(), ...g.dataSync(), ...tf.sum(y, [1, 2]).dataSync()];
    };
    const a = await run('native');
    const b = await run('cpu');
    let err = 0;
    for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
    const counts = Object.fromEntries(nativeCallCounts);
    console.log(JSON.stringify({ nativeAvailable, nativeIsa, err, n: a.length, ran: ['Conv2D', 'MaxPool', 'MaxPoolGrad', 'Exp', 'Sum'].filter((k) => (counts[k] ?? 0) > 0) }));
  `;
  for (const level of runnable)
    it(`${level}: loads, runs natively, matches cpu within 1e-5`, () => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: root,
        env: { ...process.env, RETORT_MAX_ISA: level, RETORT_QUIET: '0' },
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
        nativeAvailable: boolean;
        nativeIsa: string;
        err: number;
        n: number;
        ran: string[];
      };
      assert.equal(out.nativeAvailable, true, r.stderr);
      assert.equal(out.nativeIsa, level);
      assert.deepEqual(out.ran, ['Conv2D', 'MaxPool', 'MaxPoolGrad', 'Exp', 'Sum']);
      assert.ok(out.n > 100 && out.err <= 1e-5, `max relative error ${out.err} over ${out.n} values`);
    });
});
