/**
 * The one place that knows the addon's C ABI. Every native function takes its inputs as
 * Float32Arrays (read only), an output Float32Array allocated by the backend's pool (fully
 * overwritten by the kernel), and integer geometry packed in an Int32Array.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CpuInfo, cpuInfo, ISA_LEVELS, type IsaLevel, isaCapFromEnv, minLevel } from './cpu.js';

type F32 = Float32Array;
type I32 = Int32Array;

/** Typed view of `build/<level>/retort_native.node`. Argument order mirrors native/<Kernel>.cc. */
export interface NativeAddon {
  engine: string;
  /** The level it was compiled for: 'x86-64-v2' | 'x86-64-v3' | 'x86-64-v4' | 'generic'. */
  isa: string;
  setNumThreads(n: number): number;
  Conv2D(x: F32, filter: F32, out: F32, geom: I32): void;
  FusedConv2D(x: F32, filter: F32, out: F32, geom: I32, bias: F32, relu: number): void;
  Conv2DBackpropInput(dy: F32, filter: F32, dx: F32, geom: I32): void;
  Conv2DBackpropFilter(x: F32, dy: F32, dw: F32, geom: I32): void;
  DepthwiseConv2dNative(x: F32, filter: F32, out: F32, geom: I32): void;
  DepthwiseConv2dNativeBackpropInput(dy: F32, filter: F32, dx: F32, geom: I32): void;
  DepthwiseConv2dNativeBackpropFilter(x: F32, dy: F32, dw: F32, geom: I32): void;
  Slice(x: F32, out: F32, shape: I32, begin: I32, size: I32): void;
  /** Copies x into out at `offset` along `axis` (one input of a Concat). */
  Concat(x: F32, out: F32, shape: I32, outShape: I32, axis: number, offset: number): void;
  PadV2(x: F32, out: F32, shape: I32, before: I32, outShape: I32, constant: number): void;
  Tile(x: F32, out: F32, shape: I32, outShape: I32): void;
  // @pool-matmul-api
  // 2-D pooling, NHWC (native/pool_common.h): geom = [N, H, W, C, KH, KW, OH, OW, strideH, strideW,
  // padT, padL, padB, padR].
  MaxPool(x: F32, out: F32, geom: I32): void;
  AvgPool(x: F32, out: F32, geom: I32): void;
  MaxPoolGrad(dy: F32, x: F32, dx: F32, geom: I32): void;
  AvgPoolGrad(dy: F32, dx: F32, geom: I32): void;
  // Matmul (native/matmul_common.h): geom = [batchA, batchB, M, N, K, transposeA, transposeB, biasB,
  // biasM, biasN]; bias dims 0 and an empty bias array when there is none.
  BatchMatMul(a: F32, b: F32, out: F32, geom: I32): void;
  _FusedMatMul(a: F32, b: F32, bias: F32, out: F32, geom: I32, relu: number): void;
  // @elementwise-api
  // Broadcasting binary ops (native/elementwise.h): geom = [rankA, rankB, ...aShape, ...bShape]; out
  // has the broadcast shape.
  Add(a: F32, b: F32, out: F32, geom: I32): void;
  Sub(a: F32, b: F32, out: F32, geom: I32): void;
  Multiply(a: F32, b: F32, out: F32, geom: I32): void;
  RealDiv(a: F32, b: F32, out: F32, geom: I32): void;
  Maximum(a: F32, b: F32, out: F32, geom: I32): void;
  Minimum(a: F32, b: F32, out: F32, geom: I32): void;
  SquaredDifference(a: F32, b: F32, out: F32, geom: I32): void;
  Pow(a: F32, b: F32, out: F32, geom: I32): void;
  // Unary ops: out = f(x), same length.
  Relu(x: F32, out: F32): void;
  Relu6(x: F32, out: F32): void;
  Elu(x: F32, out: F32): void;
  Exp(x: F32, out: F32): void;
  Log(x: F32, out: F32): void;
  Neg(x: F32, out: F32): void;
  Square(x: F32, out: F32): void;
  Sqrt(x: F32, out: F32): void;
  Rsqrt(x: F32, out: F32): void;
  Reciprocal(x: F32, out: F32): void;
  Abs(x: F32, out: F32): void;
  Sigmoid(x: F32, out: F32): void;
  Tanh(x: F32, out: F32): void;
  Step(x: F32, out: F32, alpha: number): void;
  LeakyRelu(x: F32, out: F32, alpha: number): void;
  /** out = xs[0] + xs[1] + ... (at most 31 inputs; out may be xs[0]). */
  AddN(out: F32, ...xs: F32[]): void;
  /** Params of length 1, c (last dim of x) or x's size; missing offset/scale as [0]/[1]. */
  FusedBatchNorm(
    x: F32,
    mean: F32,
    variance: F32,
    offset: F32,
    scale: F32,
    out: F32,
    c: number,
    eps: number,
  ): void;
  // @reductions-api
  Sum(x: F32, out: F32, shape: I32, axes: I32): void;
  Mean(x: F32, out: F32, shape: I32, axes: I32): void;
  Max(x: F32, out: F32, shape: I32, axes: I32): void;
  Min(x: F32, out: F32, shape: I32, axes: I32): void;
  Prod(x: F32, out: F32, shape: I32, axes: I32): void;
  Transpose(x: F32, out: F32, shape: I32, perm: I32): void;
  Softmax(x: F32, out: F32, rows: number, cols: number): void;
  ArgMax(x: F32, out: I32, shape: I32, axis: number): void;
  // @optimizer-api
  RetortAdamUpdate(
    p: F32,
    g: F32,
    m: F32,
    v: F32,
    outP: F32,
    outM: F32,
    outV: F32,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    c1: number,
    c2: number,
    weightDecay: number,
    decoupled: number,
  ): void;
  RetortSgdUpdate(
    p: F32,
    g: F32,
    buf: F32,
    outP: F32,
    outBuf: F32,
    lr: number,
    momentum: number,
    dampening: number,
    weightDecay: number,
    nesterov: number,
    firstStep: number,
  ): void;
  RetortBatchNormTrain(
    x: F32,
    gamma: F32,
    beta: F32,
    runMean: F32,
    runVar: F32,
    outY: F32,
    outMean: F32,
    outInvStd: F32,
    outRunMean: F32,
    outRunVar: F32,
    channels: number,
    eps: number,
    momentum: number,
  ): void;
  RetortBatchNormTrainGrad(
    dy: F32,
    x: F32,
    gamma: F32,
    mean: F32,
    invStd: F32,
    outDx: F32,
    outDgamma: F32,
    outDbeta: F32,
    channels: number,
  ): void;
  /** Batched symmetric eigendecomposition (native/RetortSymEig.cc): x [B*n*n] -> values, valuesLo, vectors. */
  RetortSymEig(x: F32, outValues: F32, outValuesLo: F32, outVectors: F32, n: number): void;
  RetortSymEigGrad(
    values: F32,
    valuesLo: F32,
    vectors: F32,
    gValues: F32,
    gVectors: F32,
    outGx: F32,
    n: number,
  ): void;
  /** Row lookups of memory banks (native/RetortGatherRowsDot.cc etc.); indices are Int32Array. */
  RetortGatherRowsDot(table: F32, idx: I32, x: F32, out: F32, m: number, d: number): void;
  RetortGatherRowsWeightedSum(table: F32, idx: I32, w: F32, out: F32, m: number, d: number): void;
  RetortScatterRows(table: F32, idx: I32, rows: F32, out: F32, d: number): void;
  GatherV2(x: F32, idx: I32, out: F32, outer: number, dim: number, inner: number): void;
  UnsortedSegmentSum(x: F32, ids: I32, out: F32, numSegments: number): void;
  [name: string]: unknown;
}

const here = dirname(fileURLToPath(import.meta.url));
/** What to run when the addon is missing: an installed package rebuilds, a source checkout makes. */
const HOW_TO_BUILD =
  'install g++, make and libdnnl-dev, then run `npm rebuild retort-kd-native` (in a Retort checkout: npm run build:addon)';
const buildDir = join(here, '..', 'build');

/**
 * Which addon file this process loads: RETORT_ADDON_PATH when set; on x86-64 the highest level
 * built under build/<level>/ that the CPU has and the environment allows (see cpu.ts); elsewhere
 * build/generic/. `level` is null when no file fits (then `why` says so).
 */
export function chooseAddon(
  cpu: CpuInfo = cpuInfo(),
  env: NodeJS.ProcessEnv = process.env,
  built: (path: string) => boolean = existsSync,
): { path: string; level: string | null; why: string } {
  const own = env['RETORT_ADDON_PATH'];
  if (own !== undefined && own !== '') return { path: own, level: 'RETORT_ADDON_PATH', why: '' };
  if (cpu.arch !== 'x64') {
    const path = join(buildDir, 'generic', 'retort_native.node');
    return { path, level: 'generic', why: '' };
  }
  // Neither CPUID (no probe) nor flags (not Linux): the baseline level is the safe guess.
  let top: IsaLevel | null = cpu.source === 'flags' && cpu.flags.size === 0 ? 'x86-64-v2' : cpu.level;
  if (top === null)
    return {
      path: join(buildDir, 'x86-64-v2', 'retort_native.node'),
      level: null,
      why: 'this CPU lacks x86-64-v2 (SSE4.2, POPCNT), the lowest level the addon is built for',
    };
  const cap = isaCapFromEnv(env);
  if (cap) top = minLevel(top, cap.cap);
  // The highest built level at or below `top` (a partial build, e.g. ISAS=x86-64-v2, still loads).
  for (let i = ISA_LEVELS.indexOf(top); i >= 0; i--) {
    const level = ISA_LEVELS[i]!;
    const path = join(buildDir, level, 'retort_native.node');
    if (built(path)) return { path, level, why: '' };
  }
  const path = join(buildDir, top, 'retort_native.node');
  return { path, level: null, why: `${path} is not built (${HOW_TO_BUILD})` };
}

function load(): { addon: NativeAddon | null; reason: string; path: string } {
  if (process.env['RETORT_NATIVE'] === '0')
    return { addon: null, reason: 'RETORT_NATIVE=0 is set', path: '' };
  let choice: ReturnType<typeof chooseAddon>;
  try {
    choice = chooseAddon();
  } catch (e) {
    return { addon: null, reason: (e as Error).message, path: '' };
  }
  const path = choice.path;
  if (choice.level === null) return { addon: null, reason: choice.why, path };
  if (!existsSync(path)) {
    return { addon: null, reason: `${path} is not built (${HOW_TO_BUILD})`, path };
  }
  // The sanitized build (make asan) needs the ASan runtime loaded before anything else; without it
  // the runtime kills the process while the file loads, past any catch below.
  if (/[/\\]asan[/\\][^/\\]+$/.test(path) && !(process.env['LD_PRELOAD'] ?? '').includes('asan')) {
    const reason = `${path} is the sanitized build: preload the ASan runtime (see scripts/asan.sh)`;
    return { addon: null, reason, path };
  }
  // libgomp reads OMP_WAIT_POLICY when it is loaded (with the addon): spinning worker threads
  // starve the single JS thread between kernels (engine-notes: 2237 -> 1960 ms per step).
  if (process.env['OMP_WAIT_POLICY'] === undefined) process.env['OMP_WAIT_POLICY'] = 'passive';
  try {
    const addon = createRequire(import.meta.url)(path) as NativeAddon;
    const threads = Number(process.env['RETORT_NUM_THREADS'] ?? process.env['OMP_NUM_THREADS'] ?? 0);
    addon.setNumThreads(threads > 0 ? threads : availableParallelism());
    return { addon, reason: '', path };
  } catch (e) {
    return { addon: null, reason: `loading ${path} failed: ${(e as Error).message.split('\n')[0]}`, path };
  }
}

const loaded = load();
/** The addon, or null when it could not be loaded (then `nativeUnavailableReason` says why). */
export const native: NativeAddon | null = loaded.addon;
export const nativeUnavailableReason: string = loaded.reason;
/** Absolute path of the addon file loaded (or the one that was looked for). */
export const addonPath: string = loaded.path;
/** The level the loaded addon was compiled for ('x86-64-v4', ..., 'generic'), or null. */
export const nativeIsa: string | null = loaded.addon?.isa ?? null;
