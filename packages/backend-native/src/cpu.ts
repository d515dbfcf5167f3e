/**
 * What the CPU can run: the x86-64 level and VNNI from the CPU itself (CPUID, asked by the small
 * baseline addon build/cpu_probe.node), the model name and feature flags from `/proc/cpuinfo`.
 * The flags alone are not enough: a VM seen here lists no `abm` (LZCNT, part of x86-64-v3) on a
 * Zen 5 that runs x86-64-v4 code, so they are the fallback when the probe is not built.
 *
 * Two consumers: the addon loader picks the highest x86-64 micro-architecture level the CPU has
 * (the Makefile builds one addon per level), and the int8 exporters say whether onnxruntime's
 * integer kernels here are exact (VNNI) or saturate pairs of products in int16 (AVX2, AVX-512
 * without VNNI).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** x86-64 micro-architecture levels the addon is built for (psABI names, as GCC's -march). */
export type IsaLevel = 'x86-64-v2' | 'x86-64-v3' | 'x86-64-v4';
export const ISA_LEVELS: readonly IsaLevel[] = ['x86-64-v2', 'x86-64-v3', 'x86-64-v4'];

/** /proc/cpuinfo flags each level needs on top of the one below (lzcnt is listed as `abm`). */
const LEVEL_FLAGS: Record<IsaLevel, readonly string[]> = {
  'x86-64-v2': ['cx16', 'lahf_lm', 'popcnt', 'sse4_1', 'sse4_2', 'ssse3'],
  'x86-64-v3': ['avx', 'avx2', 'bmi1', 'bmi2', 'f16c', 'fma', 'abm', 'movbe', 'xsave'],
  'x86-64-v4': ['avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl'],
};

/** Flags that give onnxruntime's u8s8 kernels an int32 dot product (no int16 pair sums). */
const VNNI_FLAGS = ['avx512_vnni', 'avx_vnni', 'amx_int8'];

export interface CpuInfo {
  /** `process.arch`-style architecture: 'x64', 'arm64', ... */
  arch: string;
  /** Model name as the OS reports it ('' when unknown). */
  model: string;
  /** Feature flags (empty when they could not be read). */
  flags: ReadonlySet<string>;
  /** Highest x86-64 level the CPU runs; null off x86-64, below v2, or when unknown. */
  level: IsaLevel | null;
  /** Whether onnxruntime's integer kernels here sum u8 x s8 products in int32 (VNNI / AMX). */
  vnni: boolean;
  /** Where `level` and `vnni` come from: the CPU (CPUID), or the OS's flag list. */
  source: 'cpuid' | 'flags';
}

/** Highest level whose flags (and those of every level below) are all in `flags`. */
export function isaLevelOf(flags: ReadonlySet<string>): IsaLevel | null {
  let level: IsaLevel | null = null;
  for (const l of ISA_LEVELS) {
    if (!LEVEL_FLAGS[l].every((f) => flags.has(f))) break;
    level = l;
  }
  return level;
}

/** Parses the text of /proc/cpuinfo (the first processor's model name and flags). */
export function parseCpuinfo(text: string, cpuArch: string = arch()): CpuInfo {
  const field = (name: string): string => {
    const m = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text);
    return m?.[1]?.trim() ?? '';
  };
  // x86 lists `flags`, arm64 `Features`.
  const flags = new Set((field('flags') || field('Features')).split(/\s+/).filter((f) => f !== ''));
  return {
    arch: cpuArch,
    model: field('model name') || field('CPU part'),
    flags,
    level: cpuArch === 'x64' ? isaLevelOf(flags) : null,
    vnni: VNNI_FLAGS.some((f) => flags.has(f)),
    source: 'flags',
  };
}

/** The probe's answer, or null when build/cpu_probe.node is missing or fails to load. */
function probeCpu(): { level: IsaLevel | null; vnni: boolean } | null {
  const path = join(dirname(fileURLToPath(import.meta.url)), '..', 'build', 'cpu_probe.node');
  if (!existsSync(path)) return null;
  try {
    const p = createRequire(import.meta.url)(path) as { level: string; vnni: boolean };
    const level = (ISA_LEVELS as readonly string[]).includes(p.level) ? (p.level as IsaLevel) : null;
    return { level, vnni: p.vnni };
  } catch {
    return null;
  }
}

let cached: CpuInfo | undefined;
/** This machine's CPU (read once). */
export function cpuInfo(): CpuInfo {
  if (cached === undefined) {
    let text = '';
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      // Not Linux: no flags; callers treat the level as unknown.
    }
    const parsed = parseCpuinfo(text);
    const probed = parsed.arch === 'x64' ? probeCpu() : null;
    cached = probed
      ? { ...parsed, level: probed.level, vnni: probed.vnni || parsed.vnni, source: 'cpuid' }
      : parsed;
  }
  return cached;
}

/**
 * The cap on the addon's level from the environment: RETORT_MAX_ISA (`x86-64-v2|v3|v4`, or
 * `sse4`, `avx2`, `avx512`), else oneDNN's own ONEDNN_MAX_CPU_ISA mapped to the level that holds
 * it, so that one switch moves both oneDNN's kernels and Retort's own loops to the AVX2 paths.
 * Returns null when neither is set (or ONEDNN_MAX_CPU_ISA=ALL); throws on a value it cannot read.
 */
export function isaCapFromEnv(env: NodeJS.ProcessEnv = process.env): { cap: IsaLevel; from: string } | null {
  const own = env['RETORT_MAX_ISA'];
  if (own !== undefined && own !== '') {
    const v = own.toLowerCase();
    const alias: Record<string, IsaLevel> = {
      'x86-64-v2': 'x86-64-v2',
      v2: 'x86-64-v2',
      sse4: 'x86-64-v2',
      'x86-64-v3': 'x86-64-v3',
      v3: 'x86-64-v3',
      avx2: 'x86-64-v3',
      'x86-64-v4': 'x86-64-v4',
      v4: 'x86-64-v4',
      avx512: 'x86-64-v4',
    };
    const cap = alias[v];
    if (cap === undefined)
      throw new Error(
        `RETORT_MAX_ISA must be one of x86-64-v2, x86-64-v3, x86-64-v4 (or sse4, avx2, avx512), got '${own}'`,
      );
    return { cap, from: `RETORT_MAX_ISA=${own}` };
  }
  const dnnl = env['ONEDNN_MAX_CPU_ISA'] ?? env['DNNL_MAX_CPU_ISA'];
  if (dnnl === undefined || dnnl === '' || dnnl.toUpperCase() === 'ALL') return null;
  const u = dnnl.toUpperCase();
  const cap: IsaLevel =
    u.startsWith('AVX512') || u.startsWith('AVX10') || u.startsWith('AMX')
      ? 'x86-64-v4'
      : u.startsWith('AVX2')
        ? 'x86-64-v3'
        : 'x86-64-v2';
  return { cap, from: `ONEDNN_MAX_CPU_ISA=${dnnl}` };
}

/** The lower of two levels. */
export function minLevel(a: IsaLevel, b: IsaLevel): IsaLevel {
  return ISA_LEVELS.indexOf(a) <= ISA_LEVELS.indexOf(b) ? a : b;
}

/** One line for logs: model, arch, level and the flags that matter for speed and int8. */
export function describeCpu(c: CpuInfo = cpuInfo()): string {
  const has = (f: string) => (c.flags.has(f) ? f : `no ${f}`);
  const feats =
    c.arch === 'x64'
      ? [has('avx2'), has('avx512f'), c.vnni ? 'vnni' : 'no vnni'].join(', ')
      : [...c.flags].slice(0, 8).join(' ');
  return `${c.model || 'unknown CPU'} (${c.arch}${c.level ? `, ${c.level}` : ''}; ${feats})`;
}
