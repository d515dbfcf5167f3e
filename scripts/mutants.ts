/**
 * `npm run test:mutants`: small deliberate bugs, one at a time, each a single edit in the source,
 * against the tests whose names promise to catch it. A mutant is killed when those tests fail;
 * every one must be. Not part of `npm test` (each mutant re-runs test files: ~10 min in all).
 * Options: --only id1,id2 (run a subset).
 *
 * The file is restored after each mutant (also on Ctrl-C); a mutant whose text is not found
 * exactly once fails the run, so the list cannot silently rot as the code changes.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

interface Mutant {
  id: string;
  what: string;
  file: string;
  find: string;
  replace: string;
  /** More edits in the same file, applied after the first. */
  more?: { find: string; replace: string }[];
  /** Test file patterns (scripts/test.sh arguments) expected to kill it. */
  tests: string[];
}

const R = 'packages/retort/src/';
const B = 'packages/backend-native/src/';

export const MUTANTS: Mutant[] = [
  {
    id: 'kd-scale',
    what: 'KD without its T^2 factor',
    file: `${R}distill/losses/kd.ts`,
    find: 'tf.mul(kl, (T * T) / n)',
    replace: 'tf.mul(kl, T / n)',
    tests: ['distill/losses/kd.test'],
  },
  {
    id: 'dkd-swap',
    what: 'DKD with alpha and beta swapped',
    file: `${R}distill/losses/dkd.ts`,
    find: 'tf.add(tf.mul(tckd, alpha), tf.mul(nckd, beta))',
    replace: 'tf.add(tf.mul(tckd, beta), tf.mul(nckd, alpha))',
    tests: ['distill/losses/dkd.test'],
  },
  {
    id: 'at-reduction',
    what: 'AT summing where it should average',
    file: `${R}distill/losses/at.ts`,
    find: 'return tf.mean(tf.square(tf.sub(attentionMap(a, cfg.p), attentionMap(b, cfg.p))));',
    replace: 'return tf.sum(tf.square(tf.sub(attentionMap(a, cfg.p), attentionMap(b, cfg.p))));',
    tests: ['distill/losses/at.test'],
  },
  {
    id: 'sgd-wd-sign',
    what: 'SGD weight decay with the wrong sign',
    file: `${R}train/optimizers.ts`,
    find: 'tf.add(g, tf.mul(this.weightDecay, p))',
    replace: 'tf.sub(g, tf.mul(this.weightDecay, p))',
    tests: ['train/optimizers.test'],
  },
  {
    id: 'cosine-schedule',
    what: 'cosine schedule off by a factor',
    file: `${R}train/schedule.ts`,
    find: '0.5 * (1 + Math.cos(Math.PI * t))',
    replace: '0.5 * (1 + Math.cos(Math.PI * t * 0.9))',
    tests: ['train/schedule.test'],
  },
  {
    id: 'hflip-off-by-one',
    what: 'horizontal flip reading one column off',
    file: `${R}data/loader.ts`,
    find: 'const sc = (flip ? W - 1 - col : col) + dx;',
    replace: 'const sc = (flip ? W - col : col) + dx;',
    tests: ['data/loader.test'],
  },
  {
    id: 'idx-header',
    what: 'IDX reader skipping one header byte too many',
    file: `${R}data/idx.ts`,
    find: 'const headerBytes = 4 + 4 * rank;',
    replace: 'const headerBytes = 5 + 4 * rank;',
    tests: ['data/idx.test'],
  },
  {
    id: 'csv-label-column',
    what: 'CSV labels read from the column after the label column',
    file: `${R}data/csv.ts`,
    find: 'const label = fields[li]!;',
    replace: 'const label = fields[li + 1] ?? fields[li]!;',
    tests: ['data/csv.test'],
  },
  {
    id: 'checkpoint-digest',
    what: 'checkpoint digest not verified',
    file: `${R}train/checkpoint.ts`,
    find: 'if (!got.equals(want))',
    replace: 'if (false && !got.equals(want))',
    tests: ['train/checkpoint.test', 'train/trainer.test'],
  },
  {
    id: 'teacher-cache-ignored',
    what: 'the offline scheme ignoring the teacher cache',
    file: `${R}distill/schemes/offline.ts`,
    find: 'const cache = opts.cache?.covers(tLayers) ? opts.cache : null;',
    replace: 'const cache = null as typeof opts.cache | null;',
    tests: ['distill/teacher-cache.test'],
  },
  {
    id: 'data-key-content',
    what: 'teacher-cache data key without the content digest',
    file: `${R}data/build.ts`,
    find: 'content: contentDigest(train),',
    replace: "content: 'same',",
    tests: ['data/build.test'],
  },
  {
    id: 'int8-portable-range',
    what: 'portable target writing 8-bit weights',
    file: `${R}export/onnx/target.ts`,
    find: 'portable: 63, vnni: 127',
    replace: 'portable: 127, vnni: 127',
    tests: ['export/int8-target.test'],
  },
  {
    id: 'saturation-pairs',
    what: 'saturation reference pairing k with k+2',
    file: `${R}measure/int8-saturation.ts`,
    find: 'const a1 = a[row + j + 1]!;',
    replace: 'const a1 = a[row + j + 2] ?? 0;',
    tests: ['export/int8-target.test'],
  },
  {
    id: 'tfjs-export-weights',
    what: 'tfjs loader silently dropping every weight (the model keeps its seeded initial values)',
    file: `${R}export/tfjs.ts`,
    find: 'weightSpecs: manifest.flatMap((m) => m.weights),',
    replace:
      "weightSpecs: manifest.flatMap((m) => m.weights).map((w) => ({ ...w, name: 'x'.concat(w.name) })),",
    more: [
      {
        find: '      weightData,\n    }),\n  );',
        replace: '      weightData,\n    }),\n    { strict: false },\n  );',
      },
    ],
    tests: ['export/tfjs.test'],
  },
  {
    id: 'run-name-dotdot',
    what: "run names allowing '..'",
    file: `${R}train/run-dir.ts`,
    find: 'export const RUN_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;',
    replace: 'export const RUN_NAME = /^[A-Za-z0-9._-]+$/;',
    tests: ['train/run-dir.test'],
  },
  {
    id: 'run-lock-alive',
    what: 'run lock treating every holder as dead',
    file: `${R}train/run-dir.ts`,
    find: 'process.kill(pid, 0);',
    replace: "throw new Error('no such process');",
    tests: ['train/run-dir.test'],
  },
  {
    id: 'zero-steps',
    what: 'a zero-step run accepted',
    file: `${R}train/trainer.ts`,
    find: 'if (steps === 0 && startEpoch < opts.epochs)',
    replace: 'if (steps < 0 && startEpoch < opts.epochs)',
    tests: ['train/trainer.test'],
  },
  {
    id: 'native-backprop-input-skipped',
    what: 'native Conv2DBackpropInput never registered (the JS kernel runs)',
    file: `${B}kernels/Conv2DBackpropInput.ts`,
    find: "kernelName: 'Conv2DBackpropInput',",
    replace: "kernelName: 'Conv2DBackpropInputUnused',",
    tests: ['backend-native/test/Conv2D.test'],
  },
  {
    id: 'native-matmul-odd-batches',
    what: 'native BatchMatMul taking batch layouts it cannot serve',
    file: `${B}kernels/matmul_util.ts`,
    find: 'if (batchA !== batchB && batchA !== 1 && batchB !== 1) return null;',
    replace: '',
    more: [{ find: 'if (sizeOf(outer) !== Math.max(batchA, batchB)) return null;', replace: '' }],
    tests: ['backend-native/test/MatMul.test'],
  },
  {
    id: 'dispose-recursion',
    what: 'disposeData reading storage before checking it',
    file: `${B}backend.ts`,
    find: 'if (!this.data.has(dataId)) return super.disposeData(dataId, force);',
    replace: '',
    tests: ['backend-native/test/tfjs-suite.test'],
  },
  {
    id: 'conv-shape-fallback',
    what: 'conv kernels taking inputs whose shapes differ from their geometry',
    file: `${B}kernels/conv_util.ts`,
    find: 'if (!same(a, expect[spec.inputs[0]]) || !same(b, expect[spec.inputs[1]])) return null;',
    replace: '',
    tests: ['backend-native/test/tfjs-suite.test'],
  },
  {
    id: 'latency-units',
    what: 'throughput off by a factor (units)',
    file: `${R}measure/latency.ts`,
    find: 'throughput: (1000 * batch) / med,',
    replace: 'throughput: (1000 * batch) / (med * 10),',
    tests: ['measure/model-stats.test'],
  },
  {
    id: 'results-top1',
    what: "results.json reporting another number than the saved model's test top-1",
    file: `${R}run/experiment.ts`,
    find: 'testTop1: test.top1,',
    replace: 'testTop1: test.top5,',
    tests: ['run/experiment.test'],
  },
  {
    id: 'png-idat-length',
    what: 'PNG pixel stream length not checked',
    file: `${R}data/png-check.ts`,
    find: 'if (got.length !== want)',
    replace: 'if (got.length > want)',
    tests: ['data/png-check.test'],
  },
];

function main(): void {
  const argv = process.argv.slice(2);
  const i = argv.indexOf('--only');
  const only = i >= 0 ? new Set(argv[i + 1]!.split(',')) : null;
  const list = MUTANTS.filter((m) => only === null || only.has(m.id));
  const rows: string[] = [];
  let survived = 0;
  let current: { path: string; text: string } | null = null;
  const restore = () => {
    if (current) writeFileSync(current.path, current.text);
    current = null;
  };
  process.on('SIGINT', () => {
    restore();
    process.exit(130);
  });
  // The same test files without any mutant must pass: a kill then means an assertion caught the bug.
  const all = [...new Set(list.flatMap((m) => m.tests))];
  const base = spawnSync('bash', ['scripts/test.sh', ...all], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  if (base.status !== 0) throw new Error(`the unmutated tests fail (${all.join(', ')}): fix them first`);
  process.stderr.write(`baseline: ${all.length} test patterns pass unmutated\n`);
  for (const m of list) {
    const path = join(root, m.file);
    const text = readFileSync(path, 'utf8');
    let mutated = text;
    for (const e of [{ find: m.find, replace: m.replace }, ...(m.more ?? [])]) {
      const count = mutated.split(e.find).length - 1;
      if (count !== 1)
        throw new Error(`mutant ${m.id}: '${e.find}' occurs ${count} times in ${m.file}, expected once`);
      mutated = mutated.replace(e.find, e.replace);
    }
    current = { path, text };
    writeFileSync(path, mutated);
    const t0 = performance.now();
    let killed: boolean;
    try {
      const r = spawnSync('bash', ['scripts/test.sh', ...m.tests], {
        cwd: root,
        encoding: 'utf8',
        timeout: 600_000,
        maxBuffer: 1 << 28,
      });
      killed = r.status !== 0;
    } finally {
      restore();
    }
    const s = ((performance.now() - t0) / 1000).toFixed(0);
    if (!killed) survived++;
    rows.push(`| ${m.id} | ${m.what} | ${m.tests.join(', ')} | ${killed ? 'killed' : 'SURVIVED'} | ${s} |`);
    process.stderr.write(`${m.id}: ${killed ? 'killed' : 'SURVIVED'} (${s} s)\n`);
  }
  process.stdout.write(
    ['| mutant | bug | tests run | result | seconds |', '|---|---|---|---|---|', ...rows, ''].join('\n'),
  );
  process.stdout.write(`${list.length - survived} of ${list.length} mutants killed\n`);
  if (survived > 0) process.exitCode = 1;
}

main();
