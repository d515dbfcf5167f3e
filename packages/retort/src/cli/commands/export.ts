/**
 * `retort export <run folder> --format onnx|onnx-int8|onnx-int8-dynamic|onnx-fp16|tfjs|tfjs-uint8|tfjs-uint16|tfjs-fp16|rtz
 * [--weights per-channel|per-tensor] [--out DIR]`: writes the run's model and checks it. ONNX
 * files are loaded in onnxruntime-node and compared with Retort on the test split: fp32 outputs
 * must agree within 1e-4, fp16 ones (fp16 weights cast to float in the graph) within
 * --max-rel-diff of the largest |logit| (the compress pipeline's check.fp16MaxRelDiff and its
 * default), int8 top-1 predictions with the fp32 model's (the agreement is printed).
 * onnx-int8 is static QDQ, activations calibrated on --calib-batches training batches;
 * onnx-int8-dynamic quantizes activations per run (no calibration); both quantize weights per
 * --weights, on the grid of --int8-target (portable: 7-bit weights, right on every x86-64 and ARM64
 * CPU; vnni / arm64: full 8-bit; the target and this CPU's features are printed, with a warning
 * when the file would saturate here). onnxruntime latency at batch 1 and 64 is printed (--threads intra-op threads); for
 * int8 also the fp32 export's, timed interleaved with it, and their ratio (on a busy machine,
 * --threads 1 gives the steadiest ratio).
 * tfjs exports are loaded back with tf.loadLayersModel and compared on one test batch (exactly for
 * fp32; uint8 and uint16 weights change the logits a little, which is printed; float16 weights are
 * held to the same relative check as onnx-fp16); an rtz bundle is loaded back with loadBundle
 * (lossless: difference 0). Each file's size and gzip size are printed.
 */

import { mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { cpuInfo, describeCpu } from 'retort-kd-native';
import { takeBatches } from '../../data/loader.js';
import {
  calibrateRanges,
  exportOnnx,
  INT8_TARGETS,
  type Int8Target,
  targetNotice,
  WEIGHT_GRANULARITIES,
  type WeightGranularity,
} from '../../export/onnx.js';
import { loadBundle, writeBundle } from '../../export/rtz.js';
import { sidecarFor, writeSidecar } from '../../export/sidecar.js';
import { exportTfjs, loadTfjs, WEIGHTS_FILE } from '../../export/tfjs.js';
import { measureFiles } from '../../measure/files.js';
import { type Latency, measureOrtLatencies } from '../../measure/latency.js';
import { checkOnnx } from '../../measure/onnx-check.js';
import { EXPORT_FORMATS, pipelineSchema } from '../../run/compress-config.js';
import { loadRun } from '../../run/load.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import { type Command, SUMMARIES } from '../command.js';

const FORMATS: readonly string[] = EXPORT_FORMATS;
/** tfjs's weight quantization of each quantized tfjs format. */
const TFJS_QUANTIZE = { 'tfjs-uint8': 'uint8', 'tfjs-uint16': 'uint16', 'tfjs-fp16': 'float16' } as const;
/** The compress pipeline's export checks and their defaults (check.fp16MaxRelDiff). */
const CHECK = pipelineSchema.shape.check.parse(undefined);

const options: readonly OptionSpec[] = [
  {
    name: 'format',
    kind: 'string',
    help: 'onnx, onnx-int8 (static), onnx-int8-dynamic, onnx-fp16, tfjs, tfjs-uint8, tfjs-uint16, tfjs-fp16 or rtz',
    default: 'onnx',
  },
  { name: 'out', kind: 'string', help: 'output file (onnx) or folder (tfjs); default inside the run folder' },
  {
    name: 'calib-batches',
    kind: 'string',
    help: 'training batches for int8 calibration (onnx-int8)',
    default: '8',
  },
  {
    name: 'weights',
    kind: 'string',
    help: 'int8 weight scales: per-channel (default) or per-tensor; onnx-int8 and onnx-int8-dynamic',
  },
  {
    name: 'int8-target',
    kind: 'string',
    help: 'CPUs the int8 file is right on: portable (default; every x86-64 and ARM64), vnni or arm64 (full 8-bit weights)',
  },
  {
    name: 'threads',
    kind: 'number',
    help: "onnxruntime intra-op threads for the latency runs (default onnxruntime's)",
  },
  {
    name: 'min-agreement',
    kind: 'number',
    help: 'int8 exports fail below this % of test images whose top-1 matches the fp32 model (default 99)',
  },
  {
    name: 'max-rel-diff',
    kind: 'number',
    help: `fp16 exports fail when a logit differs from Retort's by more than this fraction of the largest |logit| (default ${CHECK.fp16MaxRelDiff}, as compress's check.fp16MaxRelDiff); onnx-fp16 and tfjs-fp16`,
  },
  { name: 'help', kind: 'flag', help: 'show this help' },
];

export const exportCommand: Command = {
  name: 'export',
  summary: SUMMARIES.export,
  async run(argv) {
    const pos: string[] = [];
    const o = parseOptions(argv, options, 'export', pos);
    if (o['help'] === true || pos.length !== 1) {
      console.log(
        `usage: retort export <run folder> [--format onnx|onnx-int8|onnx-int8-dynamic|onnx-fp16|tfjs|tfjs-uint8|tfjs-uint16|tfjs-fp16|rtz] [--weights per-channel|per-tensor] [--int8-target portable|vnni|arm64] [--threads n] [--out path]\n\n${helpText('export', this.summary, options)}`,
      );
      if (pos.length !== 1 && o['help'] !== true) throw new Error('retort export: give one run folder');
      return;
    }
    const dir = pos[0]!;
    const format = String(o['format']);
    if (!FORMATS.includes(format))
      throw new Error(
        `retort export: --format must be ${FORMATS.slice(0, -1).join(', ')} or ${FORMATS[FORMATS.length - 1]}, got '${format}'`,
      );
    const int8 = format === 'onnx-int8' || format === 'onnx-int8-dynamic';
    const fp16 = format === 'onnx-fp16' || format === 'tfjs-fp16';
    let weights: WeightGranularity | undefined;
    if (o['weights'] !== undefined) {
      const v = String(o['weights']);
      if (!(WEIGHT_GRANULARITIES as readonly string[]).includes(v))
        throw new Error(`retort export: --weights must be ${WEIGHT_GRANULARITIES.join(' or ')}, got '${v}'`);
      if (!int8)
        throw new Error(
          `retort export: --weights applies to --format onnx-int8 and onnx-int8-dynamic only, not '${format}'`,
        );
      weights = v as WeightGranularity;
    }
    let target: Int8Target = 'portable';
    if (o['int8-target'] !== undefined) {
      const v = String(o['int8-target']);
      if (!(INT8_TARGETS as readonly string[]).includes(v))
        throw new Error(`retort export: --int8-target must be ${INT8_TARGETS.join(', ')}, got '${v}'`);
      if (!int8)
        throw new Error(
          `retort export: --int8-target applies to --format onnx-int8 and onnx-int8-dynamic only, not '${format}'`,
        );
      target = v as Int8Target;
    }
    const threads = o['threads'] as number | undefined;
    if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1))
      throw new Error(`retort export: --threads must be a positive integer, got ${threads}`);
    const minAgree = (o['min-agreement'] as number | undefined) ?? 99;
    if (!(minAgree >= 0 && minAgree <= 100))
      throw new Error(`retort export: --min-agreement must be a percentage in [0, 100], got ${minAgree}`);
    if (o['min-agreement'] !== undefined && !int8)
      throw new Error(
        `retort export: --min-agreement applies to onnx-int8 and onnx-int8-dynamic, not ${format}`,
      );
    const maxRel = (o['max-rel-diff'] as number | undefined) ?? CHECK.fp16MaxRelDiff;
    if (!(maxRel > 0 && Number.isFinite(maxRel)))
      throw new Error(`retort export: --max-rel-diff must be a positive number, got ${maxRel}`);
    if (o['max-rel-diff'] !== undefined && !fp16)
      throw new Error(`retort export: --max-rel-diff applies to onnx-fp16 and tfjs-fp16, not ${format}`);
    const { exp, data, model } = await loadRun(dir, 'export');
    if (int8) {
      const notice = targetNotice(target, cpuInfo());
      process.stderr.write(`retort export: ${notice.info}\n`);
      if (notice.warning) process.stderr.write(`retort export: warning: ${notice.warning}\n`);
    }
    if (format === 'tfjs' || format === 'rtz' || format in TFJS_QUANTIZE) {
      const given = typeof o['out'] === 'string' ? o['out'] : undefined;
      const out = given ?? join(dir, 'export', format === 'rtz' ? 'model.rtz' : format);
      let back: tfl.LayersModel;
      if (format === 'rtz') {
        // A file the user named is not replaced; the run's own export is.
        mkdirSync(dirname(out), { recursive: true });
        await writeBundle(model, out, { overwrite: given === undefined });
        back = await loadBundle(out);
      } else {
        const quantize = TFJS_QUANTIZE[format as keyof typeof TFJS_QUANTIZE];
        await exportTfjs(model, out, quantize === undefined ? {} : { quantize });
        writeSidecar(join(out, 'retort.json'), sidecarFor('tfjs', 'model.json', data));
        back = await loadTfjs(out);
      }
      const [batch] = await takeBatches(data.test, 1);
      if (!batch) throw new Error(`retort export: ${dir}: the test split has no batches`);
      const x = tf.tensor4d(batch.x, [batch.n, ...data.shape]);
      const [same, scale] = tf.tidy(() => {
        const want = model.predict(x) as tf.Tensor;
        const got = back.predict(x) as tf.Tensor;
        return [tf.max(tf.abs(tf.sub(want, got))).dataSync()[0]!, tf.max(tf.abs(want)).dataSync()[0]!];
      });
      const files = measureFiles(
        format,
        (format === 'rtz' ? [out] : [join(out, 'model.json'), join(out, WEIGHTS_FILE)]).map((p) => ({
          path: p,
          shown: p,
        })),
        format === 'rtz' ? ['retort'] : ['tfjs', 'retort'],
      );
      for (const f of files)
        process.stderr.write(`retort export: ${f.path}: ${f.bytes} B, gzip ${f.gzipBytes} B\n`);
      const rel = same / Math.max(scale, Number.MIN_VALUE);
      console.log(
        JSON.stringify({
          run: dir,
          format,
          out,
          maxAbsDiff: same,
          ...(fp16 ? { maxRelDiff: rel } : {}),
          files,
        }),
      );
      if (fp16 && rel > maxRel)
        throw new Error(
          `retort export: ${out}: float16 weights move the logits by ${same.toExponential(2)}, ${rel.toExponential(2)} of the largest |logit| (> --max-rel-diff ${maxRel}); the files are written, the report above`,
        );
      return;
    }
    let quant: ReturnType<typeof calibrateRanges> | undefined;
    if (format === 'onnx-int8') {
      const n = Number(o['calib-batches']);
      const batches = (await takeBatches(data.trainPlain, n)).map((b) =>
        tf.tensor4d(b.x, [b.n, ...data.shape]),
      );
      quant = calibrateRanges(model, batches);
      tf.dispose(batches);
    }
    const dynamic = format === 'onnx-int8-dynamic';
    const bytes = exportOnnx(model, {
      ...(quant ? { quant } : {}),
      ...(dynamic ? { dynamic } : {}),
      ...(weights ? { weights } : {}),
      ...(int8 ? { target } : {}),
      ...(fp16 ? { fp16 } : {}),
    });
    const suffix = int8
      ? `.int8${dynamic ? '-dynamic' : ''}${weights === 'per-tensor' ? '-per-tensor' : ''}${target === 'portable' ? '' : `-${target}`}`
      : fp16
        ? '.fp16'
        : '';
    const out =
      typeof o['out'] === 'string'
        ? o['out']
        : join(dir, 'export', `${exp.model.name ?? 'model'}${suffix}.onnx`);
    mkdirSync(dirname(out), { recursive: true });
    writeFileAtomic(out, bytes);
    writeSidecar(
      `${out}.json`,
      sidecarFor(format, basename(out), data, int8 ? { int8Target: target } : undefined),
    );
    const check = (await checkOnnx([bytes], model, data))[0]!;
    // One batch size after the other (concurrent sessions would share the cores); int8 interleaved
    // with its fp32 export, so that the ratio compares like with like on a loaded machine.
    const fp32 = int8 ? exportOnnx(model) : undefined;
    const round = (l: Latency) => ({
      medianMs: Number(l.medianMs.toFixed(3)),
      imgPerSec: Math.round(l.throughput),
    });
    const latency: [string, ReturnType<typeof round>][] = [];
    const fp32Latency: [string, ReturnType<typeof round> & { int8OverFp32: number }][] = [];
    for (const batch of [1, 64]) {
      const [l, f] = await measureOrtLatencies(fp32 ? [bytes, fp32] : [bytes], data.shape, batch, {
        warmup: 3,
        repeats: batch === 1 ? 50 : 10,
        rounds: fp32 ? 5 : 1,
        ...(threads ? { threads } : {}),
      });
      latency.push([`b${batch}`, round(l!)]);
      if (f)
        fp32Latency.push([
          `b${batch}`,
          { ...round(f), int8OverFp32: Number((l!.medianMs / f.medianMs).toFixed(3)) },
        ]);
    }
    const relDiff = check.maxAbsDiff / Math.max(check.maxAbsRef, Number.MIN_VALUE);
    const report = {
      run: dir,
      format,
      out,
      bytes: bytes.length,
      testImages: check.images,
      onnxTop1: check.top1,
      top1AgreementWithRetort: check.agreement,
      maxAbsLogitDiff: check.maxAbsDiff,
      ...(fp16 ? { maxRelLogitDiff: relDiff } : {}),
      ...(int8 ? { weights: weights ?? 'per-channel', int8Target: target, cpu: describeCpu() } : {}),
      onnxruntimeThreads: threads ?? 'default',
      onnxruntimeLatency: Object.fromEntries(latency),
      ...(fp32 ? { fp32OnnxruntimeLatency: Object.fromEntries(fp32Latency) } : {}),
    };
    console.log(JSON.stringify(report));
    if (fp16 && relDiff > maxRel)
      throw new Error(
        `retort export: ${out}: onnxruntime logits differ from Retort's by ${check.maxAbsDiff.toExponential(2)}, ${relDiff.toExponential(2)} of the largest |logit| (> --max-rel-diff ${maxRel}); the file is written, the report above`,
      );
    if (!int8 && !fp16 && check.maxAbsDiff > 1e-4)
      throw new Error(`retort export: ONNX outputs differ from Retort's by ${check.maxAbsDiff} (> 1e-4)`);
    if (int8 && report.top1AgreementWithRetort < minAgree)
      throw new Error(
        `retort export: ${out}: int8 top-1 agrees with the fp32 model on ${report.top1AgreementWithRetort.toFixed(2)}% of the ${check.images} test images (< --min-agreement ${minAgree}; int8 target ${target}${target !== 'portable' && cpuInfo().arch === 'x64' && !cpuInfo().vnni ? ', full 8-bit weights on a CPU without VNNI' : ''}); the file is written, the report above`,
      );
  },
};
