/**
 * Every committed experiment file under configs/ loads, validates against the schema, and names
 * only registered losses with valid parameters and complete tap bindings; tapped layers exist in the
 * student and teacher models.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import 'retort-kd-native';
import { loadExperiment, readConfigFile } from '../../src/config/load.js';
import { resolveConfigPaths } from '../../src/config/paths.js';
import { parseTerms } from '../../src/distill/schemes/offline.js';
import { buildModel } from '../../src/models/index.js';
import { pipelineSchema } from '../../src/run/compress.js';
import { resolveScheme } from '../../src/run/experiment.js';
import { loadSearch } from '../../src/run/search.js';
import { expandGrid } from '../../src/run/sweep-grid.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const configs = join(root, 'configs');

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return yamlFiles(p);
    return /\.(ya?ml|json)$/.test(f) ? [p] : [];
  });
}

describe('committed configs', () => {
  const files = yamlFiles(configs);
  it('there are configs to check', () => assert.ok(files.length >= 6));
  for (const file of files) {
    it(relative(root, file), () => {
      const raw = readConfigFile(file) as Record<string, unknown>;
      // Keys only a compression pipeline has (an experiment file has none of them).
      const pipelineKeys = [
        'student',
        'prune',
        'quantize',
        'lowrank',
        'cluster',
        'finetune',
        'lottery',
        'tucker',
        'hash',
        'rigl',
        'mixedPrecision',
      ];
      if (pipelineKeys.some((k) => k in raw)) {
        // A compression pipeline (retort compress), not an experiment; a model file it names exists.
        resolveConfigPaths(raw, dirname(file));
        const cfg = pipelineSchema.parse(raw);
        const modelFile = cfg.model?.onnx ?? cfg.model?.tfjs;
        if (modelFile !== undefined) assert.ok(existsSync(modelFile), `${modelFile} not found`);
        return;
      }
      if ('search' in raw) {
        // A student search (retort search): its section, its space, and the recipe with a candidate.
        const s = loadSearch(file);
        assert.ok(s.space.size > 1);
        return;
      }
      if (['experiment', 'experiments', 'axes'].some((k) => k in raw)) {
        // A sweep grid (retort sweep): every run it expands to is a valid experiment.
        assert.ok(expandGrid(file).length > 0);
        return;
      }
      const exp = loadExperiment(file);
      const stages = exp.stages ?? [{ name: 'main', epochs: exp.epochs, losses: exp.losses }];
      // The scheme's options and its checks (teacher or not, losses it can serve).
      assert.doesNotThrow(() =>
        resolveScheme(
          exp,
          stages.map((s) => ({ ...s, terms: parseTerms(s.losses, file) })),
          file,
        ),
      );
      assert.ok(stages.length > 0);
      // Fashion-MNIST shapes: the zoo builds any input size, so this checks layer names, not sizes.
      const opts = { inputShape: [28, 28, 1] as [number, number, number], numClasses: 10 };
      const student = buildModel(exp.model.name!, { ...exp.model.options, ...opts });
      const teacher = exp.teacher?.model
        ? buildModel(exp.teacher.model.name!, { ...exp.teacher.model.options, ...opts })
        : null;
      for (const stage of stages) {
        const terms = parseTerms(stage.losses, file);
        for (const t of terms) {
          for (const layer of Object.values(t.taps.student))
            assert.doesNotThrow(() => student.getLayer(layer), `${t.label}: student layer ${layer}`);
          for (const layer of Object.values(t.taps.teacher)) {
            assert.ok(teacher, `${t.label} taps the teacher, and the config has none`);
            assert.doesNotThrow(() => teacher.getLayer(layer), `${t.label}: teacher layer ${layer}`);
          }
        }
      }
    });
  }
});
