/**
 * Int8 export targets: which CPUs an int8 ONNX file is right on.
 *
 * onnxruntime runs uint8 activations x int8 weights. On x86-64 without VNNI (AVX2, and AVX-512
 * without VNNI) its kernels multiply with VPMADDUBSW, which adds each pair of neighbouring u8 x s8
 * products into an int16 and saturates: with weights up to 127 a pair can reach 2 x 255 x 127 =
 * 64,770, far past 32,767, and results go wrong (a dynamic-int8 ResNet-8 agreed with fp32 on 49% of
 * Fashion-MNIST test images on a Zen 3, 99%+ on VNNI machines). With VNNI (VPDPBUSD, AMX) the four
 * products of a group are summed in int32 and nothing saturates. On ARM64 the dot-product
 * instructions (SDOT/UDOT) and the widening multiplies of older cores accumulate in 32 bits.
 *
 *  - `portable` (default): weights in [-63, 63] (7 bits, as onnxruntime's `reduce_range`): a pair
 *    is at most 2 x 255 x 63 = 32,130 < 32,767 for any activation byte, so the file is right on
 *    every x86-64 and ARM64 CPU by construction; it costs one bit of weight resolution.
 *  - `vnni`: full 8-bit weights [-127, 127], for machines known to have AVX512-VNNI, AVX-VNNI or AMX.
 *  - `arm64`: full 8-bit weights, for ARM64 machines.
 */
import type { CpuInfo } from 'retort-kd-native';

export type Int8Target = 'portable' | 'vnni' | 'arm64';
export const INT8_TARGETS: readonly Int8Target[] = ['portable', 'vnni', 'arm64'];

/** Largest |q| of the symmetric int8 weights of each target. */
export const WEIGHT_QMAX: Readonly<Record<Int8Target, number>> = { portable: 63, vnni: 127, arm64: 127 };

/** Largest |q| of int8 weights for `target`; throws naming the valid targets on anything else. */
export function weightQmax(target: Int8Target | undefined, where = 'int8 export'): number {
  const t = target ?? 'portable';
  const q = (WEIGHT_QMAX as Record<string, number>)[t];
  if (q === undefined)
    throw new Error(`${where}: target must be ${INT8_TARGETS.join(', ')}, got '${String(target)}'`);
  return q;
}

/**
 * What to tell the user about exporting `target` on `cpu`: one info line (the target, its weight
 * range, the CPU and its features) and a warning where the file would not be right on this very
 * machine's onnxruntime (so the export's own agreement check may fail here).
 */
export function targetNotice(target: Int8Target, cpu: CpuInfo): { info: string; warning?: string } {
  const q = WEIGHT_QMAX[target];
  const feats =
    cpu.arch === 'x64'
      ? `avx2 ${cpu.flags.has('avx2') ? 'yes' : 'no'}, avx512f ${cpu.flags.has('avx512f') ? 'yes' : 'no'}, vnni ${cpu.vnni ? 'yes' : 'no'}`
      : cpu.arch;
  const info = `int8 target ${target} (weights in [-${q}, ${q}]); this CPU: ${cpu.model || 'unknown'} (${feats})`;
  if (target === 'vnni' && cpu.arch === 'x64' && !cpu.vnni)
    return {
      info,
      warning:
        "int8 target 'vnni' exported on a CPU without VNNI: onnxruntime's integer kernels here sum pairs of products in int16 and saturate on full 8-bit weights, so this file gives wrong results on this machine (and the agreement check may fail); use target 'portable' for files that run anywhere",
    };
  if (target === 'arm64' && cpu.arch === 'x64' && !cpu.vnni)
    return {
      info,
      warning:
        "int8 target 'arm64' has full 8-bit weights: right on ARM64 and VNNI machines, wrong on this CPU (no VNNI), so the agreement check may fail here",
    };
  return { info };
}
