/**
 * Reliability helpers: a bit-exact snapshot of everything a failed call must leave alone (weights,
 * optimizer state and step count, LSTM states, the fixed batch size, the shuffling RNG's position, the
 * compile settings), and small seeded model and data builders.
 */
import { expect } from "vitest";
import { Sequential, LSTM, Dense, type DType } from "../../src/index.js";
import { Rng } from "../../src/init.js";

/** The raw bytes of a typed array as hex, so -0, NaN payloads and the last bit all count. */
function bytesOf(a: ArrayBufferView | null | undefined): string {
  if (!a) return "null";
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("hex");
}

export interface Snapshot {
  params: string;
  slots: string[];
  iterations: number;
  states: string[];
  batchSize: number | undefined;
  rng: string;
  compiled: string;
  built: boolean;
}

export function snapshot(m: Sequential): Snapshot {
  return {
    params: bytesOf(m.engine.params),
    slots: m.optimizer ? m.optimizer.slots().map(bytesOf) : [],
    iterations: m.optimizer?.iterations ?? -1,
    states: m.engine.rnns.flatMap((l, i) => m.engine.state[i]?.map((s) => bytesOf(s)) ?? l.stateNames.map(() => "none")),
    batchSize: m.batchSize,
    rng: JSON.stringify(m.engine.shuffleRng.state()),
    compiled: JSON.stringify([m.loss, m.metrics, m.engine.onNonFinite, m.optimizer?.name, m.optimizer?.config()]),
    built: m.engine.params.length > 0,
  };
}

/** Asserts two snapshots are identical, naming the first part that differs. */
export function expectSame(label: string, a: Snapshot, b: Snapshot): void {
  for (const k of Object.keys(a) as (keyof Snapshot)[]) {
    expect(JSON.stringify(b[k]), `${label}: ${k} changed`).toBe(JSON.stringify(a[k]));
  }
}

/** Uniform values in [lo, hi) as nested [B, T, F] arrays, from a seeded stream. */
export function randomSeq(rng: Rng, B: number, T: number, F: number, lo = -1, hi = 1): number[][][] {
  return Array.from({ length: B }, () => Array.from({ length: T }, () => Array.from({ length: F }, () => lo + (hi - lo) * rng.uniform())));
}

/** Labels [B, D] (or [B, T, D] when T is given): 0/1 for BCE, uniform in [-1, 1) otherwise. */
export function randomLabels(rng: Rng, B: number, D: number, bce: boolean, T?: number): number[][] | number[][][] {
  const one = (): number[] => Array.from({ length: D }, () => (bce ? (rng.uniform() < 0.5 ? 0 : 1) : 2 * rng.uniform() - 1));
  return T === undefined ? Array.from({ length: B }, one) : Array.from({ length: B }, () => Array.from({ length: T }, one));
}

export interface SmallConfig {
  F: number;
  units: number[];
  D: number;
  perStep?: boolean;
  stateful?: boolean;
  batchSize?: number;
  dtype?: DType;
  seed?: number | string;
  head?: "linear" | "sigmoid" | "tanh" | "relu";
  hidden?: ("linear" | "sigmoid" | "tanh" | "relu")[];
  unitForgetBias?: boolean;
}

/** LSTM stack (+ optional hidden Dense layers) + head, built (inputDim given). */
export function smallModel(c: SmallConfig): Sequential {
  const layers: (LSTM | Dense)[] = c.units.map((u, i) => new LSTM({
    units: u, inputDim: i === 0 ? c.F : undefined,
    returnSequences: i < c.units.length - 1 || !!c.perStep,
    stateful: !!c.stateful, batchSize: c.stateful ? c.batchSize : undefined,
    unitForgetBias: c.unitForgetBias ?? true,
  }));
  for (const a of c.hidden ?? []) layers.push(new Dense({ units: 3, activation: a }));
  layers.push(new Dense({ units: c.D, activation: c.head ?? "linear" }));
  return new Sequential(layers, { dtype: c.dtype ?? "float64", seed: c.seed ?? 1 });
}
