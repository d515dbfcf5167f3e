/**
 * Is Retort's training of the tutorial models the same computation as PyTorch's? Both sides start
 * from the same weights (Retort's initialisation, written to disk and loaded by the PyTorch script),
 * read the same batches in the same order (the first `--steps` x 128 training images, unshuffled,
 * through Retort's own loader and normalisation), and take Adam steps at lr 0.001 on CE without
 * dropout (the one random draw left in the recipe). The per-step losses are then compared: if the
 * forward pass, the gradients or the optimizer differed, the curves would part within a few steps;
 * float rounding alone makes them drift apart only slowly (training is chaotic, so no tolerance holds
 * for ever).
 *
 * What this leaves out is the randomness: initial draws, shuffling and dropout masks come from
 * different generators on the two sides, and bench/results/tutorial-fashion-mnist.md compares them
 * over seeds instead.
 *
 *   npm run bench:tutorial-equivalence -- [--model deepnn|lightnn] [--steps 30]
 *
 * Needs Debian's python3-torch (/usr/bin/python3, a dev-time tool only). Exit status 1 when the
 * first four steps differ by more than 1e-4 relative.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { Adam, buildData, buildModel, crossEntropy, dataSchema, seedEverything } from 'retort-kd';
import { argOf } from './lib/runs.js';
import { writeWeights } from './lib/weights.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const model = argOf(args, 'model', 'deepnn');
const steps = Number(argOf(args, 'steps', '30'));
if (!['deepnn', 'lightnn'].includes(model)) throw new Error(`--model: deepnn or lightnn, got '${model}'`);
if (!Number.isInteger(steps) || steps < 4) throw new Error(`--steps: an integer >= 4, got '${steps}'`);
const out = join(root, 'bench/out/equivalence');
mkdirSync(out, { recursive: true });

await tf.setBackend('native');
seedEverything(42);
const data = buildData(
  dataSchema.parse({
    dataset: 'fashion-mnist',
    batchSize: 128,
    trainLimit: steps * 128,
    normalize: { mean: [0.286], std: [0.353] },
  }),
  42,
);
const net = buildModel(model, { inputShape: data.shape, numClasses: data.numClasses });

// The initial weights, in tfjs layouts (HWIO kernels, [in, out] dense kernels), one flat file.
writeWeights(out, net);

// trainPlain reads the split in file order, unshuffled, normalised as training is (its batches are
// larger than 128); cut its images into the training batches.
const pixels: Float32Array[] = [];
const classes: Int32Array[] = [];
for (const b of data.trainPlain.epoch() as Iterable<{ x: Float32Array; y: Int32Array }>) {
  pixels.push(b.x);
  classes.push(b.y);
}
const inputs = Float32Array.from(pixels.flatMap((a) => Array.from(a)));
const labels = Int32Array.from(classes.flatMap((a) => Array.from(a)));
const per = data.shape[0] * data.shape[1] * data.shape[2];
const opt = new Adam({ lr: 0.001 });
const retort: number[] = [];
for (let s = 0; s < steps; s++) {
  const x = tf.tensor4d(inputs.subarray(s * 128 * per, (s + 1) * 128 * per), [128, ...data.shape]);
  const y = tf.tensor1d(labels.subarray(s * 128, (s + 1) * 128), 'int32');
  const loss = opt.minimize(() => crossEntropy(net.apply(x, { training: false }) as tf.Tensor2D, y), true)!;
  retort.push(loss.dataSync()[0]!);
  tf.dispose([x, y, loss]);
}
// The exact inputs and labels, so the PyTorch side reads what Retort's loader produced.
writeFileSync(join(out, 'inputs.bin'), Buffer.from(inputs.buffer));
writeFileSync(join(out, 'labels.bin'), Buffer.from(labels.buffer));

const py = spawnSync(
  '/usr/bin/python3',
  [join(root, 'bench/tutorial_equivalence.py'), out, model, String(steps)],
  {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '2' },
  },
);
if (py.status !== 0) throw new Error(`bench/tutorial_equivalence.py exited with ${py.status}: ${py.stderr}`);
const torch = (JSON.parse(py.stdout) as { losses: number[] }).losses;
console.log(`${model}: Adam lr 0.001 on CE, no dropout, the first ${steps} batches of 128 in file order`);
console.log('| step | Retort loss | PyTorch loss | relative difference |');
console.log('| ---: | ---: | ---: | ---: |');
let worstEarly = 0;
for (let i = 0; i < steps; i++) {
  const d = (retort[i]! - torch[i]!) / torch[i]!;
  if (i < 4) worstEarly = Math.max(worstEarly, Math.abs(d));
  console.log(
    `| ${i + 1} | ${retort[i]!.toFixed(5)} | ${torch[i]!.toFixed(5)} | ${d >= 0 ? '+' : ''}${d.toExponential(2)} |`,
  );
}
console.log(`largest relative difference over the first 4 steps: ${worstEarly.toExponential(2)}`);
if (worstEarly > 1e-4) process.exitCode = 1;
