/**
 * SGD (momentum, dampening, nesterov, L2 weight decay) and Adam/AdamW with torch.optim semantics,
 * as tfjs optimizers (so `minimize` and tfjs-layers work with them). tfjs's own SGD has no momentum
 * or weight decay and it has no AdamW; these match PyTorch so RepDistiller/mdistiller recipes carry
 * over. Each variable's update is one fused kernel (native: one OpenMP pass; cpu: one JS loop).
 * The learning rate is a plain field so schedules can set it per step.
 */

import * as tf from '@tensorflow/tfjs-core';
import { adamUpdate, sgdUpdate } from 'retort-kd-native';

/** A tensor with the name of the variable it belongs to (tfjs does not export this type). */
export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}
type Grads = tf.NamedTensorMap | NamedTensor[];

function entries(grads: Grads): [string, tf.Tensor][] {
  if (Array.isArray(grads)) return grads.map((g) => [g.name, g.tensor]);
  return Object.entries(grads);
}

function variableNamed(name: string): tf.Variable {
  const v = tf.engine().registeredVariables[name];
  if (v === undefined) throw new Error(`optimizer: no variable named '${name}'`);
  return v;
}

/**
 * An optimizer whose per-variable state can be reached between steps, for code that resets part of
 * it (RigL zeroes the state of the connections it grows).
 */
export interface SlotOptimizer {
  /** The state kept for the variable named `name` (its shape), live; empty before its first step. */
  slotVariables(name: string): tf.Variable[];
}

/** Whether `o` lets its per-variable state be reached (SlotOptimizer). */
export function hasSlots(o: tf.Optimizer): o is tf.Optimizer & SlotOptimizer {
  return typeof (o as Partial<SlotOptimizer>).slotVariables === 'function';
}

export interface SgdConfig {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD extends tf.Optimizer implements SlotOptimizer {
  static get className(): string {
    return 'RetortSGD';
  }
  lr: number;
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  private readonly buffers = new Map<string, tf.Variable>();

  constructor(c: SgdConfig) {
    super();
    this.lr = c.lr;
    this.momentum = c.momentum ?? 0;
    this.dampening = c.dampening ?? 0;
    this.weightDecay = c.weightDecay ?? 0;
    this.nesterov = c.nesterov ?? false;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new Error('SGD: nesterov needs momentum > 0 and dampening 0 (as in torch.optim.SGD)');
    }
  }

  applyGradients(grads: Grads): void {
    tf.tidy(() => {
      for (const [name, g] of entries(grads)) {
        if (g == null) continue;
        const p = variableNamed(name);
        if (this.momentum === 0) {
          // Plain SGD: p - lr * (g + wd p); no state.
          p.assign(tf.sub(p, tf.mul(this.lr, this.weightDecay ? tf.add(g, tf.mul(this.weightDecay, p)) : g)));
          continue;
        }
        let buf = this.buffers.get(name);
        const firstStep = buf === undefined;
        if (buf === undefined) {
          buf = tf.keep(tf.zerosLike(p).variable(false));
          this.buffers.set(name, buf);
        }
        const [np, nb] = sgdUpdate(p, g, buf, {
          lr: this.lr,
          momentum: this.momentum,
          dampening: this.dampening,
          weightDecay: this.weightDecay,
          nesterov: this.nesterov,
          firstStep,
        });
        p.assign(np);
        buf.assign(nb);
      }
    });
    this.incrementIterations();
  }

  /** The momentum buffer of `name` (none without momentum or before its first step). */
  slotVariables(name: string): tf.Variable[] {
    const b = this.buffers.get(name);
    return b === undefined ? [] : [b];
  }

  override async getWeights(): Promise<NamedTensor[]> {
    const state = [...this.buffers].map(([name, t]) => ({
      name: `${name}/momentum`,
      tensor: t as tf.Tensor,
    }));
    return [await this.saveIterations(), ...state];
  }

  override async setWeights(values: NamedTensor[]): Promise<void> {
    const rest = await this.extractIterations(values);
    this.disposeState();
    for (const { name, tensor } of rest) {
      const key = name.replace(/\/momentum$/, '');
      this.buffers.set(key, tf.keep(tensor.clone().variable(false)));
    }
  }

  getConfig(): tf.serialization.ConfigDict {
    return {
      lr: this.lr,
      momentum: this.momentum,
      dampening: this.dampening,
      weightDecay: this.weightDecay,
      nesterov: this.nesterov,
    };
  }

  private disposeState(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }

  override dispose(): void {
    super.dispose();
    this.disposeState();
  }
}

export interface AdamConfig {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** AdamW (decoupled weight decay). Default false = Adam with L2 added to the gradient. */
  decoupled?: boolean;
}

export class Adam extends tf.Optimizer implements SlotOptimizer {
  static get className(): string {
    return 'RetortAdam';
  }
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly decoupled: boolean;
  private readonly moments = new Map<string, { m: tf.Variable; v: tf.Variable }>();
  private step = 0;

  constructor(c: AdamConfig) {
    super();
    this.lr = c.lr;
    this.beta1 = c.beta1 ?? 0.9;
    this.beta2 = c.beta2 ?? 0.999;
    this.eps = c.eps ?? 1e-8;
    this.weightDecay = c.weightDecay ?? (c.decoupled ? 0.01 : 0);
    this.decoupled = c.decoupled ?? false;
  }

  applyGradients(grads: Grads): void {
    this.step++;
    const c1 = 1 / (1 - this.beta1 ** this.step);
    const c2 = 1 / (1 - this.beta2 ** this.step);
    tf.tidy(() => {
      for (const [name, g] of entries(grads)) {
        if (g == null) continue;
        const p = variableNamed(name);
        let s = this.moments.get(name);
        if (s === undefined) {
          s = {
            m: tf.keep(tf.zerosLike(p).variable(false)),
            v: tf.keep(tf.zerosLike(p).variable(false)),
          };
          this.moments.set(name, s);
        }
        const [np, nm, nv] = adamUpdate(p, g, s.m, s.v, {
          lr: this.lr,
          beta1: this.beta1,
          beta2: this.beta2,
          eps: this.eps,
          c1,
          c2,
          weightDecay: this.weightDecay,
          decoupled: this.decoupled,
        });
        p.assign(np);
        s.m.assign(nm);
        s.v.assign(nv);
      }
    });
    this.incrementIterations();
  }

  /** The first and second moments (m, v) of `name` (none before its first step). */
  slotVariables(name: string): tf.Variable[] {
    const s = this.moments.get(name);
    return s === undefined ? [] : [s.m, s.v];
  }

  override async getWeights(): Promise<NamedTensor[]> {
    const state: NamedTensor[] = [];
    for (const [name, s] of this.moments)
      state.push({ name: `${name}/m`, tensor: s.m }, { name: `${name}/v`, tensor: s.v });
    return [await this.saveIterations(), ...state];
  }

  override async setWeights(values: NamedTensor[]): Promise<void> {
    const rest = await this.extractIterations(values);
    this.step = this.iterations;
    this.disposeState();
    const byName = new Map(rest.map((w) => [w.name, w.tensor]));
    for (const [key, t] of byName) {
      if (!key.endsWith('/m')) continue;
      const name = key.slice(0, -2);
      const v = byName.get(`${name}/v`);
      if (v === undefined) throw new Error(`Adam.setWeights: '${name}/m' has no matching '${name}/v'`);
      this.moments.set(name, {
        m: tf.keep(t.clone().variable(false)),
        v: tf.keep(v.clone().variable(false)),
      });
    }
  }

  getConfig(): tf.serialization.ConfigDict {
    return {
      lr: this.lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
      decoupled: this.decoupled,
    };
  }

  private disposeState(): void {
    for (const s of this.moments.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.moments.clear();
  }

  override dispose(): void {
    super.dispose();
    this.disposeState();
  }
}
