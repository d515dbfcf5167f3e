import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';

const bin = new URL('../../bin/retort.js', import.meta.url).pathname;
const run = (...args: string[]) =>
  spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, RETORT_QUIET: '1' },
  });

it('retort models lists the zoo with trainable parameter counts; bad input and unknown commands fail clearly', () => {
  const r = run('models', '--input', '28,28,1', '--classes', '10');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^\| resnet8 \| {2}\| 77,754 \|/m);
  assert.match(r.stdout, /^\| mlp \| {2}\| 50,890 \|/m);
  // Each model once; an alias sits beside its model instead of repeating it.
  assert.match(r.stdout, /^\| mobilenetv2 \| MobileNetV2 \| [\d,]+ \|/m);
  assert.match(r.stdout, /^\| shufflenetv2 \| ShuffleV2 \| [\d,]+ \|/m);
  assert.doesNotMatch(r.stdout, /^\| (MobileNetV2|ShuffleV2) \|/m);
  const rows = r.stdout.split('\n').filter((l) => /^\| [a-z]/.test(l) && !l.startsWith('| model'));
  assert.equal(new Set(rows.map((l) => l.split('|')[1])).size, rows.length);
  const bad = run('models', '--input', '28,28');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--input expects H,W,C, got '28,28'/);
  const unknown = run('trian');
  assert.equal(unknown.status, 1);
  assert.match(
    unknown.stderr,
    /unknown command 'trian' \(known: train, distill, eval, export, compress, models, demo, serve, report, sweep, worker, search\)/,
  );
  const opt = run('train', 'x.yaml', '--sett', 'a=1');
  assert.match(opt.stderr, /unknown option --sett \(known: --set, --runs, --resume, --force, --help\)/);
});

it('retort models <name> shows every layer with its output shape and weights, and the tap names', () => {
  const r = run('models', 'resnet8', '--input', '28,28,1', '--classes', '10');
  assert.equal(r.status, 0, r.stderr);
  // MACs: 28 * 28 * 16 outputs, each 3 * 3 * 1 multiply-adds; the classifier 64 * 10.
  assert.match(r.stdout, /^\| conv1 \| Conv2D \| 28x28x16 \| 144 \| 112,896 \|$/m);
  assert.match(r.stdout, /^\| layer3\.0\.bn2 \| BatchNormalization \| 7x7x64 \| 256 \| 0 \|$/m);
  assert.match(r.stdout, /^\| fc \| Dense \| 10 \| 650 \| 640 \|$/m);
  assert.match(r.stdout, /^total 78,426 weights, 77,754 trainable; [\d,]+ MACs per image$/m);
  assert.match(r.stdout, /^ {2}reviewkd: stage1, stage2, stage3, feat$/m);
  assert.match(r.stdout, /^ {2}fitnet: hint$/m);
  assert.doesNotMatch(r.stdout, /^ {2}kd:/m);
  assert.match(r.stdout, /^ {2}stage 1: layer1\.0\.relu_out {3}preact: layer1\.0\.add$/m);
  assert.match(r.stdout, /^ {2}bnBeforeRelu: layer1\.0\.bn2, layer2\.0\.bn2, layer3\.0\.bn2$/m);
  const alias = run('models', 'MobileNetV2', '--input', '32,32,3');
  assert.equal(alias.status, 0, alias.stderr);
  const unknown = run('models', 'resnet9');
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /unknown model 'resnet9' \(known: .*resnet8.*\)/);
});

it('retort --help and --version load no compute library (tfjs engine never created)', () => {
  // A preloaded module reports at exit whether tfjs-core's global engine exists.
  const probe =
    "data:text/javascript,process.on('exit',()=>process.stderr.write('tfjs:'+(globalThis._tfengine!==undefined)))";
  const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
  for (const flag of ['--help', '--version']) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', probe, main, flag], {
      encoding: 'utf8',
      env: { ...process.env, RETORT_QUIET: '1' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /tfjs:false$/);
  }
  // The probe does see tfjs when a command loads it.
  const m = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--import', probe, main, 'models', '--input', '8,8,1'],
    {
      encoding: 'utf8',
      env: { ...process.env, RETORT_QUIET: '1' },
    },
  );
  assert.match(m.stderr, /tfjs:true$/);
});

it('output piped into a reader that closes early ends the command quietly', () => {
  const r = spawnSync('sh', ['-c', `"${process.execPath}" "${bin}" models --input 8,8,1 | head -1`], {
    encoding: 'utf8',
    env: { ...process.env, RETORT_QUIET: '1' },
  });
  assert.equal(r.status, 0);
  assert.equal(r.stdout.trim(), '| model | aliases | params (8x8x1, 100 classes) | description |');
  assert.doesNotMatch(r.stderr, /EPIPE/);
});
