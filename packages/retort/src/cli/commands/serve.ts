/**
 * `retort serve <run>`: a local page that runs the run's exported student in the browser — the tfjs
 * export on tfjs's wasm backend and the int8 ONNX export on onnxruntime-web — on test images and on
 * an image the user drops (serve-page.ts). Missing exports are made first (`retort export`). The
 * libraries are served from the installed npm packages: nothing comes from the network.
 */
import 'retort-kd-native';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type Loader, takeBatches } from '../../data/loader.js';
import { calibrateRanges, exportOnnx } from '../../export/onnx.js';
import { sidecarFor, writeSidecar } from '../../export/sidecar.js';
import { exportTfjs } from '../../export/tfjs.js';
import { loadRun } from '../../run/load.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import { type Command, SUMMARIES } from '../command.js';
import { SERVE_PAGE } from '../serve-page.js';

const options: readonly OptionSpec[] = [
  { name: 'port', kind: 'number', help: 'port to listen on (0: any free one)', default: 8080 },
  { name: 'host', kind: 'string', help: 'address to listen on', default: '127.0.0.1' },
  { name: 'help', kind: 'flag', help: 'show this help' },
];

const require = createRequire(import.meta.url);

/** An installed package's folder (found from its entry point: not every package exports package.json). */
function pkgDir(name: string): string {
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch {
    throw new Error(
      `retort serve: package ${name} is not installed (optional: the page needs it); npm install onnxruntime-web@1.30.0 @tensorflow/tfjs-backend-wasm@4.22.0`,
    );
  }
  let d = dirname(entry);
  while (!existsSync(join(d, 'package.json')) || !d.endsWith(name.split('/').pop()!)) {
    const up = dirname(d);
    if (up === d) throw new Error(`retort serve: cannot find the folder of package ${name}`);
    d = up;
  }
  return d;
}

/** Test images as the model takes them (normalised float32, NHWC) and their labels, in order. */
async function testArrays(loader: Loader): Promise<{ x: Float32Array[]; y: number[] }> {
  const x: Float32Array[] = [];
  const y: number[] = [];
  for await (const b of loader.epoch()) {
    const per = b.x.length / b.n;
    for (let i = 0; i < b.n; i++) {
      x.push(b.x.slice(i * per, (i + 1) * per));
      y.push(b.y[i]!);
    }
  }
  return { x, y };
}

export interface ServeHandle {
  server: Server;
  url: string;
  /** The exports the page loads. */
  tfjsDir: string;
  onnxFile: string;
  close(): Promise<void>;
}

/** Makes the exports when missing, then serves the page; resolves once listening. */
export async function serveRun(
  dir: string,
  opts: { port?: number; host?: string } = {},
): Promise<ServeHandle> {
  const { exp, data, model } = await loadRun(dir, 'serve');
  const name = exp.model.name ?? 'model';
  const tfjsDir = join(dir, 'export', 'tfjs');
  const onnxFile = join(dir, 'export', `${name}.int8.onnx`);
  // The exports `retort export` writes (same files and sidecars), without its latency runs.
  if (!existsSync(join(tfjsDir, 'model.json'))) {
    await exportTfjs(model, tfjsDir);
    writeSidecar(join(tfjsDir, 'retort.json'), sidecarFor('tfjs', 'model.json', data));
  }
  if (!existsSync(onnxFile)) {
    const batches = (await takeBatches(data.trainPlain, 8)).map((b) =>
      tf.tensor4d(b.x, [b.n, ...data.shape]),
    );
    const quant = calibrateRanges(model, batches);
    tf.dispose(batches);
    mkdirSync(dirname(onnxFile), { recursive: true });
    writeFileAtomic(onnxFile, exportOnnx(model, { quant, target: 'portable' }));
    writeSidecar(
      `${onnxFile}.json`,
      sidecarFor('onnx-int8', basename(onnxFile), data, { int8Target: 'portable' }),
    );
  }
  model.dispose();
  const test = await testArrays(data.test);
  const [H, W, C] = data.shape;
  const meta = {
    run: exp.name,
    model: name,
    shape: data.shape,
    mean: data.mean,
    std: data.std,
    numClasses: data.numClasses,
    classes: data.classNames ?? null,
    testCount: test.y.length,
    // Grey-level datasets of light objects on black (Fashion-MNIST, MNIST): invert light photos.
    invertLight: C === 1,
  };
  const tfCore = pkgDir('@tensorflow/tfjs-core');
  const tfLayers = pkgDir('@tensorflow/tfjs-layers');
  const tfWasm = pkgDir('@tensorflow/tfjs-backend-wasm');
  const ortWeb = pkgDir('onnxruntime-web');
  const LIBS: Record<string, string> = {
    'tf-core.js': join(tfCore, 'dist', 'tf-core.min.js'),
    'tf-layers.js': join(tfLayers, 'dist', 'tf-layers.min.js'),
    'tf-backend-wasm.js': join(tfWasm, 'dist', 'tf-backend-wasm.min.js'),
  };
  const TYPES: Record<string, string> = {
    js: 'text/javascript',
    mjs: 'text/javascript',
    wasm: 'application/wasm',
    json: 'application/json',
    bin: 'application/octet-stream',
    onnx: 'application/octet-stream',
  };
  const sendFile = (res: import('node:http').ServerResponse, file: string) => {
    if (!existsSync(file)) {
      res.writeHead(404).end('not found');
      return;
    }
    const ext = file.split('.').pop() ?? '';
    res.writeHead(200, { 'content-type': TYPES[ext] ?? 'application/octet-stream' }).end(readFileSync(file));
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const p = url.pathname;
    // Only fixed names and plain file names inside known folders: no path leaves them.
    const leaf = (prefix: string) => {
      const f = p.slice(prefix.length);
      return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(f) ? f : null;
    };
    if (p === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(SERVE_PAGE);
    } else if (p === '/meta.json') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(meta));
    } else if (p === '/test') {
      const offset = Math.max(0, Number(url.searchParams.get('offset') ?? 0) | 0);
      const n = Math.max(
        0,
        Math.min(Number(url.searchParams.get('n') ?? 1) | 0, 1000, test.y.length - offset),
      );
      const size = H * W * C;
      const buf = Buffer.alloc(4 + 4 * n + 4 * n * size);
      buf.writeInt32LE(n, 0);
      for (let i = 0; i < n; i++) buf.writeInt32LE(test.y[offset + i]!, 4 + 4 * i);
      const xs = new Float32Array(buf.buffer, buf.byteOffset + 4 + 4 * n, n * size);
      for (let i = 0; i < n; i++) xs.set(test.x[offset + i]!, i * size);
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(buf);
    } else if (p.startsWith('/lib/') && LIBS[p.slice(5)] !== undefined) {
      sendFile(res, LIBS[p.slice(5)]!);
    } else if (p.startsWith('/wasm/') && leaf('/wasm/')?.endsWith('.wasm')) {
      sendFile(res, join(tfWasm, 'dist', leaf('/wasm/')!));
    } else if (p.startsWith('/ort/') && /^ort[\w.-]*\.(m?js|wasm)$/.test(leaf('/ort/') ?? '')) {
      sendFile(res, join(ortWeb, 'dist', leaf('/ort/')!));
    } else if (p.startsWith('/model/') && leaf('/model/')) {
      sendFile(res, join(tfjsDir, leaf('/model/')!));
    } else if (p === '/model.onnx') {
      sendFile(res, onnxFile);
    } else {
      res.writeHead(404).end('not found');
    }
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8080, host, resolve);
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 8080);
  return {
    server,
    url: `http://${host}:${port}/`,
    tfjsDir,
    onnxFile,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export const serveCommand: Command = {
  name: 'serve',
  summary: SUMMARIES.serve,
  async run(argv) {
    const pos: string[] = [];
    const o = parseOptions(argv, options, 'serve', pos);
    if (o['help'] === true || pos.length !== 1) {
      console.log(
        `usage: retort serve <run folder> [--port 8080]\n\n${helpText('serve', this.summary, options)}`,
      );
      if (pos.length !== 1 && o['help'] !== true) throw new Error('retort serve: give one run folder');
      return;
    }
    const h = await serveRun(pos[0]!, { port: Number(o['port']), host: String(o['host']) });
    console.log(`retort serve: ${h.url} (the tfjs export and the int8 ONNX file of ${pos[0]}; Ctrl-C stops)`);
  },
};
