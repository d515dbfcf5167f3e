/** What the JS (cpu) versions of the custom kernels share: their argument type and storage access. */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';

export type KernelArgs = { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: NamedAttrMap };

/** The Float32Array behind `t` on the cpu backend; `what` names the kernel in the error. */
export function f32(backend: MathBackendCPU, t: TensorInfo, what: string): Float32Array {
  const v = backend.data.get(t.dataId).values;
  if (!(v instanceof Float32Array)) throw new Error(`${what}: ${t.dtype} tensor, expected float32`);
  return v;
}
