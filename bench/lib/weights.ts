/**
 * A Retort model's weights for the PyTorch scripts (bench/tutorial_torch.py, tutorial_equivalence.py):
 * weights.bin, every weight as float32 in the model's weight order and tfjs layout (HWIO kernels,
 * [in, out] dense kernels), and weights.json, each weight's name, shape and offset.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LayersModel } from '@tensorflow/tfjs-layers';

export function writeWeights(dir: string, model: LayersModel): void {
  mkdirSync(dir, { recursive: true });
  const manifest: { name: string; shape: number[]; offset: number }[] = [];
  const values: number[] = [];
  for (const w of model.weights) {
    manifest.push({ name: w.originalName, shape: [...w.shape] as number[], offset: values.length });
    for (const v of w.read().dataSync()) values.push(v);
  }
  writeFileSync(join(dir, 'weights.bin'), Buffer.from(Float32Array.from(values).buffer));
  writeFileSync(join(dir, 'weights.json'), JSON.stringify(manifest));
}
