/**
 * `retort demo`: trains the tutorial's LightNN on Fashion-MNIST with the native backend and prints
 * its test accuracy and speed. (The distillation demo — teacher, label-only student, KD student —
 * replaces this once the trainer and KD loss exist.)
 */
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { FASHION_MNIST_DIR, type ImageSplit, loadIdxSplit } from '../../data/fashion-mnist.js';
import { lightNN } from '../../models/tutorial.js';
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import type { Command } from '../main.js';

const options: readonly OptionSpec[] = [
  {
    name: 'data-dir',
    kind: 'string',
    help: 'folder with the Fashion-MNIST IDX files',
    default: FASHION_MNIST_DIR,
  },
  { name: 'epochs', kind: 'number', help: 'training epochs', default: 1 },
  { name: 'batch', kind: 'number', help: 'batch size', default: 128 },
  { name: 'seed', kind: 'number', help: 'random seed for initialisation and shuffling', default: 1 },
  { name: 'help', kind: 'flag', help: 'show this help' },
];

// Fashion-MNIST training-set pixel statistics (of x / 255).
const MEAN = 0.286;
const STD = 0.353;

function batchTensors(
  split: ImageSplit,
  idx: ArrayLike<number>,
  from: number,
  to: number,
): [tf.Tensor4D, tf.Tensor2D] {
  const hw = split.height * split.width;
  const n = to - from;
  const x = new Float32Array(n * hw);
  const y = new Float32Array(n * split.numClasses);
  for (let b = 0; b < n; b++) {
    const i = idx[from + b]!;
    const src = split.images.subarray(i * hw, (i + 1) * hw);
    for (let p = 0; p < hw; p++) x[b * hw + p] = (src[p]! / 255 - MEAN) / STD;
    y[b * split.numClasses + split.labels[i]!] = 1;
  }
  return [tf.tensor4d(x, [n, split.height, split.width, 1]), tf.tensor2d(y, [n, split.numClasses])];
}

function shuffled(n: number, seed: number): Uint32Array {
  const a = Uint32Array.from({ length: n }, (_, i) => i);
  let s = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const j = (s >>> 0) % (i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'train a small CNN on Fashion-MNIST with the native backend and report accuracy and speed',
  async run(argv) {
    const o = parseOptions(argv, options, 'demo');
    if (o['help'] === true) {
      console.log(helpText('demo', this.summary, options));
      return;
    }
    const dir = String(o['data-dir']);
    const epochs = Number(o['epochs']);
    const batch = Number(o['batch']);
    const seed = Number(o['seed']);
    await tf.setBackend('native');
    const train = loadIdxSplit(dir, 'train');
    const test = loadIdxSplit(dir, 't10k');
    const model = lightNN({ inputShape: [train.height, train.width, 1], numClasses: 10, seed });
    const opt = tf.train.adam(1e-3);
    const params = model.countParams();
    const t0 = performance.now();
    const steps = Math.floor(train.count / batch);
    for (let e = 0; e < epochs; e++) {
      const order = shuffled(train.count, seed + e);
      let lossSum = 0;
      for (let s = 0; s < steps; s++) {
        const [x, y] = batchTensors(train, order, s * batch, (s + 1) * batch);
        const loss = opt.minimize(
          () =>
            tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
          true,
        )!;
        lossSum += loss.dataSync()[0]!;
        tf.dispose([x, y, loss]);
        if (process.stderr.isTTY && (s % 20 === 0 || s === steps - 1)) {
          const sec = (performance.now() - t0) / 1000;
          const done = e * steps + s + 1;
          const ips = (done * batch) / sec;
          const eta = ((epochs * steps - done) * batch) / ips;
          process.stderr.write(
            `\repoch ${e + 1}/${epochs} step ${s + 1}/${steps} loss ${(lossSum / (s + 1)).toFixed(4)} ${ips.toFixed(0)} img/s ETA ${eta.toFixed(0)}s   `,
          );
        }
      }
      if (process.stderr.isTTY) process.stderr.write('\n');
    }
    const trainSec = (performance.now() - t0) / 1000;
    let correct = 0;
    const all = Uint32Array.from({ length: test.count }, (_, i) => i);
    for (let s = 0; s < test.count; s += 500) {
      const [x, y] = batchTensors(test, all, s, Math.min(test.count, s + 500));
      const hits = tf.tidy(() =>
        tf.sum(tf.cast(tf.equal(tf.argMax(model.predict(x) as tf.Tensor, 1), tf.argMax(y, 1)), 'int32')),
      );
      correct += hits.dataSync()[0]!;
      tf.dispose([x, y, hits]);
    }
    const acc = (100 * correct) / test.count;
    console.log('| model | params | epochs | test accuracy | training time | img/s |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    console.log(
      `| LightNN | ${params} | ${epochs} | ${acc.toFixed(2)}% | ${trainSec.toFixed(1)} s | ${((epochs * steps * batch) / trainSec).toFixed(0)} |`,
    );
  },
};
