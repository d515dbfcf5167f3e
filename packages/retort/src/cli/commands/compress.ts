/**
 * `retort compress <pipeline.yaml> [--set k=v] [--runs DIR] [--force]`: a distilled student (or a
 * model you already have, ONNX or tfjs) ->
 * pruning -> quantization -> exports, one measurement table per stage in runs/<name>/ (see
 * run/compress.ts for the config).
 */
import 'retort-kd-native';
import { join } from 'node:path';
import { parseOrThrow } from '../../config/errors.js';
import { readConfigMapping } from '../../config/load.js';
import { pipelineSchema, runPipeline } from '../../run/compress.js';
import { loadPipelineInputs, pipelineData } from '../../run/compress-inputs.js';
import { runOnnxPtq } from '../../run/onnx-ptq.js';
import { prepareRunDir, releaseRunLock } from '../../train/run-dir.js';
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import { type Command, SUMMARIES } from '../command.js';

const options: readonly OptionSpec[] = [
  { name: 'set', kind: 'list', help: 'override a config key, e.g. --set prune.sparsity=0.9 (repeatable)' },
  { name: 'runs', kind: 'string', help: 'folder that holds run folders', default: 'runs' },
  { name: 'force', kind: 'flag', help: 'start over when the run folder exists (the old one is kept aside)' },
  { name: 'help', kind: 'flag', help: 'show this help' },
];

export const compressCommand: Command = {
  name: 'compress',
  summary: SUMMARIES.compress,
  async run(argv) {
    const files: string[] = [];
    const o = parseOptions(argv, options, 'compress', files);
    if (o['help'] === true || files.length !== 1) {
      console.log(
        `usage: retort compress <pipeline.yaml> [options]\n\n${helpText('compress', this.summary, options)}`,
      );
      if (files.length !== 1 && o['help'] !== true)
        throw new Error('retort compress: give one pipeline file');
      return;
    }
    const raw = readConfigMapping(files[0]!, o['set'] as string[]);
    const cfg = parseOrThrow(pipelineSchema, raw, files[0]!);
    if (cfg.quantize?.direct) {
      const data = await pipelineData(cfg);
      const runDir = prepareRunDir(String(o['runs']), cfg.name, cfg, { force: o['force'] === true });
      let r: Awaited<ReturnType<typeof runOnnxPtq>>;
      try {
        r = await runOnnxPtq(cfg, data, runDir);
      } finally {
        releaseRunLock(join(runDir, 'lock'));
      }
      console.log(
        JSON.stringify({ name: cfg.name, runDir, results: join(runDir, 'results.json'), direct: r }),
      );
      return;
    }
    const inputs = await loadPipelineInputs(cfg, String(o['runs']));
    process.stderr.write(`compress: ${inputs.description}\n`);
    const runDir = prepareRunDir(String(o['runs']), cfg.name, cfg, { force: o['force'] === true });
    let reports: Awaited<ReturnType<typeof runPipeline>>;
    try {
      reports = await runPipeline(cfg, inputs, runDir);
    } finally {
      releaseRunLock(join(runDir, 'lock'));
    }
    const { reportRun } = await import('./report.js');
    const report = await reportRun([runDir], join(runDir, 'report.html'));
    process.stderr.write(`report: ${report}\n`);
    console.log(
      JSON.stringify({
        name: cfg.name,
        runDir,
        results: join(runDir, 'results.json'),
        report,
        stages: reports.map((r) => ({
          stage: r.stage,
          testTop1: r.testTop1,
          params: r.params,
          zeroWeights: r.zeroWeights,
        })),
      }),
    );
  },
};
