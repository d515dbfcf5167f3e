/**
 * Backend `native`: tfjs's cpu backend with hot kernels replaced by oneDNN/OpenMP code from the
 * addon, and a buffer pool for their outputs. Kernels without a native version run the cpu JS code.
 */
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { BackendValues, DataId, DataType, TensorInfo } from '@tensorflow/tfjs-core';
import { BufferPool } from './pool.js';

/** Shape of one storage entry of MathBackendCPU (`backend.data.get(dataId)`). */
interface CpuEntry {
  values: BackendValues;
  dtype: DataType;
  refCount: number;
}

export class NativeBackend extends MathBackendCPU {
  readonly pool = new BufferPool();

  constructor() {
    super();
    // MathBackendCPU prints an "install tfjs-node" banner on first use; it does not apply here.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  /** A float32 output tensor of `shape` whose storage comes from the pool, plus that storage. */
  makeOutputF32(shape: number[]): { info: TensorInfo; values: Float32Array } {
    let n = 1;
    for (const d of shape) n *= d;
    const values = this.pool.alloc(n);
    return { info: this.makeTensorInfo(shape, 'float32', values), values };
  }

  /** Storage of a tensor as Float32Array, or null if it is not float32. Never write into it. */
  f32(t: TensorInfo): Float32Array | null {
    const v = this.data.get(t.dataId)?.values;
    return v instanceof Float32Array ? v : null;
  }

  override write(values: BackendValues, shape: number[], dtype: DataType): DataId {
    const id = super.write(values, shape, dtype);
    this.pool.retain(values);
    return id;
  }

  override move(
    dataId: DataId,
    values: BackendValues,
    shape: number[],
    dtype: DataType,
    refCount: number,
  ): void {
    super.move(dataId, values, shape, dtype, refCount);
    this.pool.retain(values);
  }

  override disposeData(dataId: DataId, force = false): boolean {
    // `has` before `get`: for an id this backend does not hold, tfjs's DataStorage.get asks the
    // engine to move the data here, which disposes through this method again, without end (tfjs's
    // own suite: makeTensorFromDataId, kernel and gradient registry specs).
    if (!this.data.has(dataId)) return super.disposeData(dataId, force);
    const entry = this.data.get(dataId) as CpuEntry | undefined;
    const done = super.disposeData(dataId, force);
    if (entry !== undefined && !this.data.has(dataId)) this.pool.release(entry.values);
    return done;
  }

  // Pooled storage is reused after its tensor is disposed, so callers that keep the array they
  // read (`t.dataSync()` then `t.dispose()`) must get their own copy.
  override readSync(dataId: DataId): BackendValues {
    const v = super.readSync(dataId);
    return this.pool.isOwned(v) ? (v as Float32Array).slice() : v;
  }

  override dispose(): void {
    super.dispose();
    this.pool.clear();
  }
}
