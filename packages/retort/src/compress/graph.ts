/**
 * Rebuilding a functional tfjs-layers model with some layers changed, the common step of structured
 * pruning (narrower layers), batch norms put back into imported models (restore-bn.ts), low-rank and
 * Tucker-2 factorization (one layer becomes two or three) and HashedNets (kernels become hashed
 * layers, and back). The graph is replayed layer by layer in the model's
 * (topological) order: every layer is re-created from its own class and config, so custom classes
 * such as the zoo's fused batch norm survive (a JSON round trip would turn them into their
 * serialized base class). Weights are then copied by layer name (transferWeights).
 */
import type * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

type Layer = tfl.layers.Layer;

/** What to do with one layer when rebuilding. */
export type LayerEdit =
  /** A copy of the layer with config entries replaced (e.g. `filters`). */
  | { kind: 'clone'; config?: Record<string, unknown> }
  /** Drop the layer: its consumers read its (single) input instead. */
  | { kind: 'remove' }
  /**
   * New layers applied in sequence to the layer's inputs; consumers read the last one's output. For
   * an input layer: layers applied after the input.
   */
  | { kind: 'replace'; layers: Layer[] };

/** A new layer of the same class and config (with `overrides` applied), without weights. */
export function cloneLayer(layer: Layer, overrides: Record<string, unknown> = {}): Layer {
  const Ctor = layer.constructor as new (config: Record<string, unknown>) => Layer;
  return new Ctor({ ...layer.getConfig(), ...overrides });
}

/** The layers that read `layer`'s output. */
export function consumersOf(layer: Layer): Layer[] {
  return layer.outboundNodes.map((n) => n.outboundLayer);
}

/** Whether `layer`'s output is one of the model's outputs. */
export function isModelOutput(model: tfl.LayersModel, layer: Layer): boolean {
  return model.outputs.some((o) => o.sourceLayer === layer);
}

/**
 * Replays `model` with each layer edited as `edit` says (undefined: an unchanged copy). Shared
 * layers (called more than once) are not supported and fail naming the layer. The new layers get
 * their weights when they are applied; if the rebuild fails midway, the weights of those built so
 * far are freed (the replacements `edit` made included) before the error is passed on.
 */
export function rebuildModel(
  model: tfl.LayersModel,
  edit: (layer: Layer) => LayerEdit | undefined,
  name: string = model.name,
): tfl.LayersModel {
  const applied: Layer[] = [];
  try {
    return replay(model, edit, name, applied);
  } catch (e) {
    for (const l of applied) disposeBuilt(l);
    throw e;
  }
}

/** A layer's weights and whatever else its dispose frees, however far its first apply got. */
function disposeBuilt(layer: Layer): void {
  if (!layer.built) return;
  try {
    // Reference counted: the one apply of a rebuild counts 1; dispose also frees a custom layer's
    // own tensors (a hashed layer's tables).
    layer.dispose();
  } catch {
    // Built but never counted (its apply failed after build): free the weights directly, and a
    // custom layer's own tensors through its hook.
    (layer as { disposeOwnTensors?: () => void }).disposeOwnTensors?.();
    for (const w of layer.weights)
      try {
        w.dispose();
      } catch {
        // Already freed.
      }
  }
}

function replay(
  model: tfl.LayersModel,
  edit: (layer: Layer) => LayerEdit | undefined,
  name: string,
  applied: Layer[],
): tfl.LayersModel {
  const outputs = new Map<string, tfl.SymbolicTensor[]>();
  const inputs = new Map<string, tfl.SymbolicTensor>();
  for (const layer of model.layers) {
    if (layer.inboundNodes.length !== 1)
      throw new Error(
        `rebuild '${model.name}': layer '${layer.name}' is called ${layer.inboundNodes.length} times (shared layers are not supported)`,
      );
    if (layer.getClassName() === 'InputLayer') {
      const x = model.inputs.find((t) => t.sourceLayer === layer);
      if (x === undefined)
        throw new Error(`rebuild '${model.name}': input layer '${layer.name}' is no model input`);
      const t = tfl.input({ shape: x.shape.slice(1) as number[], name: layer.name, dtype: x.dtype });
      inputs.set(layer.name, t);
      // An input cannot be removed or cloned; 'replace' appends layers after it.
      const e = edit(layer);
      let y = t;
      if (e?.kind === 'replace')
        for (const l of e.layers) {
          applied.push(l);
          y = l.apply(y) as tfl.SymbolicTensor;
        }
      outputs.set(layer.name, [y]);
      continue;
    }
    const node = layer.inboundNodes[0]!;
    const ins = node.inboundLayers.map((l, i) => {
      const t = outputs.get(l.name)?.[node.tensorIndices[i]!];
      if (t === undefined)
        throw new Error(
          `rebuild '${model.name}': layer '${layer.name}' reads '${l.name}', which is not built yet`,
        );
      return t;
    });
    const e = edit(layer) ?? { kind: 'clone' };
    if (e.kind === 'remove') {
      if (ins.length !== 1)
        throw new Error(
          `rebuild '${model.name}': cannot remove '${layer.name}': it has ${ins.length} inputs`,
        );
      outputs.set(layer.name, [ins[0]!]);
      continue;
    }
    const layers = e.kind === 'replace' ? e.layers : [cloneLayer(layer, e.config)];
    if (layers.length === 0)
      throw new Error(`rebuild '${model.name}': empty replacement for '${layer.name}'`);
    let cur: tfl.SymbolicTensor | tfl.SymbolicTensor[] = ins.length === 1 ? ins[0]! : ins;
    for (const l of layers) {
      applied.push(l);
      cur = l.apply(cur) as tfl.SymbolicTensor | tfl.SymbolicTensor[];
    }
    outputs.set(layer.name, Array.isArray(cur) ? cur : [cur]);
  }
  const pick = (t: tfl.SymbolicTensor) => {
    const o = outputs.get(t.sourceLayer.name)?.[t.tensorIndex];
    if (o === undefined)
      throw new Error(`rebuild '${model.name}': output of '${t.sourceLayer.name}' is missing`);
    return o;
  };
  return tfl.model({
    inputs: model.inputs.map((t) => inputs.get(t.sourceLayer.name)!),
    outputs: model.outputs.map(pick),
    name,
  });
}

/**
 * Sets the weights of every layer of `dst` that has any: from `given` (by layer name) where present,
 * otherwise copied from the layer of the same name in `src` (the shapes must agree).
 */
export function transferWeights(
  src: tfl.LayersModel,
  dst: tfl.LayersModel,
  given: ReadonlyMap<string, tf.Tensor[]> = new Map(),
): void {
  for (const layer of dst.layers) {
    if (layer.weights.length === 0) continue;
    const ws = given.get(layer.name) ?? srcWeights(src, layer.name);
    if (ws.length !== layer.weights.length)
      throw new Error(
        `transfer weights: layer '${layer.name}' has ${layer.weights.length} weights, got ${ws.length}`,
      );
    layer.weights.forEach((w, i) => {
      const want = w.shape.join(',');
      const got = ws[i]!.shape.join(',');
      if (want !== got)
        throw new Error(
          `transfer weights: layer '${layer.name}' weight ${w.originalName} is [${want}], got [${got}]`,
        );
    });
    layer.setWeights(ws);
  }
}

function srcWeights(src: tfl.LayersModel, name: string): tf.Tensor[] {
  let l: Layer;
  try {
    l = src.getLayer(name);
  } catch {
    throw new Error(`transfer weights: layer '${name}' is new and was given no weights`);
  }
  return l.getWeights();
}
