/**
 * Importing this module registers tfjs backend `native` (priority 3, above cpu's 1) with every cpu
 * kernel copied and the native ones replacing them. Without the addon the backend still works on
 * the JS kernels and one line on stderr says why.
 */
import '@tensorflow/tfjs-backend-cpu';
import { copyRegisteredKernels, findBackend, registerBackend } from '@tensorflow/tfjs-core';
import { NativeBackend } from './backend.js';
import { addonPath, native, nativeIsa, nativeUnavailableReason } from './binding.js';
import { registerCpuBatchNormKernels } from './custom/batchnorm_kernels.js';
import { registerCpuOptimizerKernels } from './custom/optimizer_kernels.js';
import { registerCpuRowsKernels } from './custom/rows_kernels.js';
import { registerCpuSymEigKernels } from './custom/symeig_kernels.js';
import { nativeKernels } from './kernels/index.js';
import { nativeCallCounts, registerNativeKernels } from './kernels/kernel.js';
import { defaultPoolBytes } from './pool.js';

/** Backend name. No `_`: tfjs keys kernels as `${backend}_${kernel}`. */
export const BACKEND_NAME = 'native';

let registered = false;
if (!registered) {
  registered = true;
  // A bad RETORT_POOL_MB fails here, by name: inside the backend factory tfjs would only warn.
  defaultPoolBytes();
  registerCpuOptimizerKernels();
  registerCpuBatchNormKernels();
  registerCpuSymEigKernels();
  registerCpuRowsKernels();
  registerBackend(BACKEND_NAME, () => new NativeBackend(), 3);
  copyRegisteredKernels('cpu', BACKEND_NAME);
  // tfjs's cpu backend prints an "install tfjs-node" banner on its first tensor in Node. Retort
  // uses cpu as the reference its kernels are tested against, never for speed, and tfjs-node is no
  // option here: the banner would only mislead (tests, benches, a user's setBackend('cpu')).
  const cpu = findBackend('cpu') as unknown as { firstUse?: boolean } | null;
  if (cpu) cpu.firstUse = false;
  if (native !== null) registerNativeKernels(BACKEND_NAME, nativeKernels, native);
  else if (process.env['RETORT_QUIET'] !== '1') {
    process.stderr.write(
      `retort: native kernels unavailable (${nativeUnavailableReason}); running on JS kernels\n`,
    );
  }
}

/** True when the oneDNN addon is loaded and its kernels are registered. */
export const nativeAvailable: boolean = native !== null;
// For the test runner's exit check (scripts/test-require-native.mjs): a process that imported this
// backend ran on the JS kernels only if the addon did not load, whatever its tests were named.
(globalThis as Record<symbol, unknown>)[Symbol.for('retort.native.status')] = {
  available: nativeAvailable,
  reason: nativeUnavailableReason,
};

export * from './cpu.js';
export { addonPath, nativeCallCounts, nativeIsa, nativeUnavailableReason };
/** Names of the kernels that run natively (when the addon is loaded). */
export const nativeKernelNames: readonly string[] = nativeKernels.map((k) => k.kernelName);
export { NativeBackend } from './backend.js';
export * from './custom/batchnorm_kernels.js';
export * from './custom/optimizer_kernels.js';
export * from './custom/rows_kernels.js';
export * from './custom/symeig_kernels.js';
