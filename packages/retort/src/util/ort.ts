/**
 * onnxruntime-node, loaded on first use: it is an optional peer dependency (ONNX teachers, the
 * accuracy and latency checks of exports), so that installing Retort never runs its download step.
 */
export type Ort = typeof import('onnxruntime-node');

let ort: Promise<Ort> | undefined;

/** The onnxruntime-node module; throws one line saying how to install it when it is missing. */
export function loadOrt(purpose: string): Promise<Ort> {
  ort ??= import('onnxruntime-node').catch((e: unknown) => {
    ort = undefined;
    const code = (e as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND')
      throw new Error(
        `${purpose} needs onnxruntime-node, which is not installed: npm install onnxruntime-node --onnxruntime-node-install=skip (the CPU build is inside the npm package; skip stops its optional GPU download)`,
      );
    throw e;
  });
  return ort;
}
