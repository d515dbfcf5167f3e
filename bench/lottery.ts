/**
 * `npm run bench:lottery`: the lottery-ticket check of the compression issue on ResNet-8 /
 * Fashion-MNIST. Per seed: train ResNet-8 on labels (configs/fashion-mnist/baseline/resnet8.yaml,
 * on a budget), then the compress stage `lottery` on it: iterative magnitude pruning to the target
 * sparsity, each round rewound to the run's own initial weights (<run>/init.ckpt) and trained again
 * with the same recipe (Frankle & Carbin, ICLR 2019); and the control, the final mask on a random
 * re-initialisation trained alike. Writes bench/results/lottery-fashion-mnist.md: test top-1 of the
 * dense network, the ticket and the control per seed, and their means.
 *
 *   npm run bench:lottery -- [--seeds 1,2,3] [--train-limit 10000] [--epochs 8] [--rate 0.5]
 *                            [--sparsity 0.8] [--runs runs]
 */
import 'retort-kd-native';

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRun, pipelineSchema, runPipeline, type StageReport, writeFileAtomic } from 'retort-kd';
import { argOf, cpuLine, meanSd, runOrReuse } from './lib/runs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const seeds = argOf(args, 'seeds', '1,2,3').split(',').map(Number);
const limit = Number(argOf(args, 'train-limit', '10000'));
const epochs = Number(argOf(args, 'epochs', '8'));
const rate = Number(argOf(args, 'rate', '0.5'));
const sparsity = Number(argOf(args, 'sparsity', '0.8'));
const runs = resolve(argOf(args, 'runs', 'runs'));
const base = join(root, 'configs/fashion-mnist/baseline/resnet8.yaml');
// The base config's optimizer, so each round trains as the dense network did.
const optimizer = { name: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.0005 };
const tag = `n${limit}-e${epochs}`;

interface Row {
  seed: number;
  dense: number;
  ticket: number;
  control: number;
  sparsity: number;
  seconds: number;
}
const rows: Row[] = [];
const started = performance.now();
for (const seed of seeds) {
  const t0 = performance.now();
  const run = await runOrReuse(
    base,
    [`seed=${seed}`, `name=lottery-resnet8-${tag}-s${seed}`, `data.trainLimit=${limit}`, `epochs=${epochs}`],
    runs,
  );
  const runDir = join(runs, run.name);
  const name = `lottery-resnet8-${tag}-r${rate}-sp${sparsity}-s${seed}`;
  const cfg = pipelineSchema.parse({
    name,
    student: { run: runDir },
    finetune: { epochs, optimizer, kd: 0 },
    lottery: {
      rate,
      sparsity,
      rewind: 'init',
      // The run's own initialisation; rewinding to an early epoch k would need that epoch's trainer
      // checkpoint, which a finished run keeps only for its last two epochs.
      rewindFrom: join(runDir, 'init.ckpt'),
      control: 'random-reinit',
      seed,
    },
    export: ['onnx'],
  });
  const s = await loadRun(runDir, 'bench:lottery');
  const ref = await loadRun(runDir, 'bench:lottery');
  const reports: StageReport[] = await runPipeline(
    cfg,
    { model: s.model, teacher: ref.model, data: s.data },
    join(runs, name),
    (l) => process.stderr.write(`[s${seed}] ${l}\n`),
  );
  const row = (stage: string) => {
    const r = reports.find((x) => x.stage === stage);
    if (!r) throw new Error(`bench:lottery: no '${stage}' row in ${join(runs, name, 'results.json')}`);
    return r;
  };
  const ticket = row('lottery');
  rows.push({
    seed,
    dense: row('baseline').testTop1,
    ticket: ticket.testTop1,
    control: row('lottery-random-reinit').testTop1,
    sparsity: ticket.zeroWeights / ticket.params,
    seconds: (performance.now() - t0) / 1000,
  });
}

const f2 = (v: number) => v.toFixed(2);
const ms = (xs: number[]) => {
  const { m, sd } = meanSd(xs);
  return `${f2(m)} ± ${f2(sd)}`;
};
const gap = rows.map((r) => r.ticket - r.control);
const text = `# Lottery tickets: ResNet-8 on Fashion-MNIST

Command: \`npm run bench:lottery -- --seeds ${seeds.join(',')} --train-limit ${limit} --epochs ${epochs} --rate ${rate} --sparsity ${sparsity}\`
(${((performance.now() - started) / 60000).toFixed(1)} min wall, ${cpuLine()}).

Per seed: ResNet-8 trained on labels (configs/fashion-mnist/baseline/resnet8.yaml: SGD lr 0.1,
Nesterov, weight decay 5e-4, cosine with 1 warm-up epoch) for ${epochs} epochs on the first ${limit}
training images; then \`compress\` with the \`lottery\` stage: each round prunes ${rate * 100}% of the
surviving conv and dense weights (global magnitude) until ${sparsity * 100}% sparsity, rewinds every
weight to the run's initialisation (its init.ckpt), and trains ${epochs} epochs again
(same optimizer, cosine, labels only: finetune.kd 0). Control: the final mask on a random
re-initialisation (the layers' own initialisers, another seed), trained the same way. Test top-1
on the 10,000 test images.

| seed | dense | ticket (rewound) | random re-init, same mask | ticket − re-init (pp) | sparsity | time |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${r.seed} | ${f2(r.dense)} | ${f2(r.ticket)} | ${f2(r.control)} | ${r.ticket - r.control >= 0 ? '+' : ''}${f2(r.ticket - r.control)} | ${(100 * r.sparsity).toFixed(1)}% | ${(r.seconds / 60).toFixed(1)} min |`).join('\n')}
| mean ± sd | ${ms(rows.map((r) => r.dense))} | ${ms(rows.map((r) => r.ticket))} | ${ms(rows.map((r) => r.control))} | ${ms(gap)} | | |

Sparsity is of all parameters (zero weights / parameters; biases and batch norm are not pruned).
The ticket beats its re-initialisation on ${gap.filter((g) => g > 0).length} of ${gap.length} seeds.
`;
writeFileAtomic(join(root, 'bench/results/lottery-fashion-mnist.md'), text);
process.stdout.write(text);
