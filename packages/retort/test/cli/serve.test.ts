/**
 * End to end: `retort serve` on a copy of the shipped ResNet-20 run, Debian's Chromium (headless,
 * driven by playwright-core) loading the page, and the browser's top-1 classes on 1,000 test images
 * compared with Node's for each export: the tfjs model (native backend here, tfjs's wasm backend
 * there) and the int8 ONNX file (onnxruntime-node here, onnxruntime-web there).
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import { chromium } from 'playwright-core';
import { serveRun } from '../../src/cli/commands/serve.js';
import { loadTfjs } from '../../src/export/tfjs.js';
import { loadRun } from '../../src/run/load.js';

const repo = new URL('../../../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'retort-serve-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const N = 1000;

/** Chromium as root in a sandboxed container, without reaching out to the network. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function argmaxRows(v: Float32Array, k: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < v.length / k; i++) {
    let b = 0;
    for (let c = 1; c < k; c++) if (v[i * k + c]! > v[i * k + b]!) b = c;
    out.push(b);
  }
  return out;
}

it('the browser classifies 1,000 test images as Node does: tfjs export >= 99.9%, int8 ONNX >= 99%', async () => {
  const dir = join(tmp, 'run');
  mkdirSync(dir);
  for (const f of ['config.json', 'model.ckpt', 'results.json'])
    copyFileSync(join(repo, 'models/fashion-mnist-resnet20', f), join(dir, f));
  const h = await serveRun(dir, { port: 0 });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1180, height: 1000 } });
    const console_: string[] = [];
    page.on('console', (m) => console_.push(m.text()));
    await page.goto(h.url);
    await page.waitForFunction(
      () => (globalThis as unknown as { retort?: unknown }).retort !== undefined,
      null,
      {
        timeout: 180_000,
      },
    );
    const err = await page.evaluate(
      () => (globalThis as unknown as { retort: { error?: string } }).retort.error,
    );
    assert.equal(err, undefined, `page error: ${err}\n${console_.join('\n')}`);
    const got = await page.evaluate(
      (n) =>
        (
          globalThis as unknown as {
            retort: {
              classify(o: number, n: number): Promise<{ tfjs: number[]; onnx: number[]; labels: number[] }>;
            };
          }
        ).retort.classify(0, n),
      N,
    );
    await page.screenshot({ path: process.env['RETORT_SERVE_SCREENSHOT'] ?? join(tmp, 'serve.png') });
    assert.equal(got.tfjs.length, N);
    // Node's predictions on the same normalised inputs.
    const { data } = await loadRun(dir, 'test');
    const xs: Float32Array[] = [];
    const ys: number[] = [];
    for await (const b of data.test.epoch()) {
      xs.push(b.x);
      ys.push(...b.y);
      if (ys.length >= N) break;
    }
    const size = data.shape[0] * data.shape[1] * data.shape[2];
    const x = new Float32Array(N * size);
    let o = 0;
    for (const b of xs) {
      const take = Math.min(b.length, x.length - o);
      x.set(b.subarray(0, take), o);
      o += take;
    }
    assert.deepEqual(got.labels, ys.slice(0, N));
    const model = await loadTfjs(h.tfjsDir);
    const k = data.numClasses;
    const nodeTfjs = argmaxRows(
      tf.tidy(
        () => (model.predict(tf.tensor4d(x, [N, ...data.shape])) as tf.Tensor).dataSync() as Float32Array,
      ),
      k,
    );
    const session = await ort.InferenceSession.create(h.onnxFile);
    const out = await session.run({
      [session.inputNames[0]!]: new ort.Tensor('float32', x, [N, ...data.shape]),
    });
    const nodeOnnx = argmaxRows(out[session.outputNames[0]!]!.data as Float32Array, k);
    const agree = (a: number[], b: number[]) => (100 * a.filter((v, i) => v === b[i]).length) / a.length;
    const tfjsAgree = agree(got.tfjs, nodeTfjs);
    const onnxAgree = agree(got.onnx, nodeOnnx);
    process.stderr.write(
      `browser vs Node on ${N} test images: tfjs ${tfjsAgree.toFixed(2)}%, int8 ONNX ${onnxAgree.toFixed(2)}%\n`,
    );
    assert.ok(tfjsAgree >= 99.9, `tfjs export: the browser agrees with Node on ${tfjsAgree}% of the images`);
    assert.ok(onnxAgree >= 99, `int8 ONNX: the browser agrees with Node on ${onnxAgree}% of the images`);
    // And the models are the trained ones, not agreeing on noise.
    assert.ok(agree(got.tfjs, ys.slice(0, N)) > 90);
  } finally {
    await browser.close();
    await h.close();
  }
});
