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

type F32 = Float32Array;
type I32 = Int32Array;

/** Typed view of `build/retort_native.node`. Argument order mirrors native/<Kernel>.cc. */
export interface NativeAddon {
  engine: string;
  setNumThreads(n: number): number;
  Conv2D(x: F32, filter: F32, out: F32, geom: I32): void;
  FusedConv2D(x: F32, filter: F32, out: F32, geom: I32, bias: F32, relu: number): void;
  Conv2DBackpropInput(dy: F32, filter: F32, dx: F32, geom: I32): void;
  Conv2DBackpropFilter(x: F32, dy: F32, dw: F32, geom: I32): void;
  DepthwiseConv2dNative(x: F32, filter: F32, out: F32, geom: I32): void;
  DepthwiseConv2dNativeBackpropInput(dy: F32, filter: F32, dx: F32, geom: I32): void;
  DepthwiseConv2dNativeBackpropFilter(x: F32, dy: F32, dw: F32, geom: I32): void;
  // @pool-matmul-api
  // @elementwise-api
  // @reductions-api
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
  [name: string]: unknown;
}

const here = dirname(fileURLToPath(import.meta.url));
/** Absolute path of the built addon. */
export const addonPath = process.env['RETORT_ADDON_PATH'] ?? join(here, '..', 'build', 'retort_native.node');

function load(): { addon: NativeAddon | null; reason: string } {
  if (process.env['RETORT_NATIVE'] === '0') return { addon: null, reason: 'RETORT_NATIVE=0 is set' };
  if (!existsSync(addonPath)) {
    return { addon: null, reason: `${addonPath} is not built (run: npm run build:addon)` };
  }
  // libgomp reads OMP_WAIT_POLICY when it is loaded (with the addon): spinning worker threads
  // starve the single JS thread between kernels (engine-notes: 2237 -> 1960 ms per step).
  if (process.env['OMP_WAIT_POLICY'] === undefined) process.env['OMP_WAIT_POLICY'] = 'passive';
  try {
    const addon = createRequire(import.meta.url)(addonPath) as NativeAddon;
    const threads = Number(process.env['RETORT_NUM_THREADS'] ?? process.env['OMP_NUM_THREADS'] ?? 0);
    addon.setNumThreads(threads > 0 ? threads : availableParallelism());
    return { addon, reason: '' };
  } catch (e) {
    return { addon: null, reason: `loading ${addonPath} failed: ${(e as Error).message.split('\n')[0]}` };
  }
}

const loaded = load();
/** The addon, or null when it could not be loaded (then `nativeUnavailableReason` says why). */
export const native: NativeAddon | null = loaded.addon;
export const nativeUnavailableReason: string = loaded.reason;
