/**
 * The checkpoint's JSON form and its writer: what a model's state looks like as plain JSON. The reader
 * (which builds models, so it sits above the model facade) and the file bytes are in checkpoint.ts.
 *
 * Arrays are stored losslessly as base64 of their raw little-endian bytes (float32 weights as 4 bytes,
 * float64 as 8), never as decimal text, so a round trip is exact for every value, -0, subnormals and all.
 */
import type { Engine, Layer } from "./engine.js";
import { LSTM, type RecurrentActivation } from "./layers/lstm.js";
import { GRU } from "./layers/gru.js";
import { Bidirectional, type MergeMode } from "./layers/bidirectional.js";
import { Embedding, type EmbeddingInitializer } from "./layers/embedding.js";
import type { Activation } from "./layers/dense.js";
import type { Optimizer, OptimizerName } from "./optimizers.js";
import type { ScheduleJSON } from "./schedules.js";
import type { LossName, MetricName } from "./losses.js";
import type { InitializerName } from "./init.js";
import type { DType, FloatArray } from "./tensor/tensor.js";
import { base64Encode } from "./bytes.js";

/**
 * The newest format this version reads and writes. Version 3 added the LSTM options `goBackwards` and
 * `zeroOutputForMask` (written only by a model that uses one of them). Version 2 added the layer options
 * `recurrentActivation` and `useBias`; a model that uses neither at its default is still written as version 1, which every
 * longshort since 0.1 reads (an older reader refuses a version-2 file by name instead of silently computing
 * σ where the file asks for hard sigmoid).
 *
 * @example
 * checkpointToJSON(model).version <= CHECKPOINT_VERSION;   // true
 */
export const CHECKPOINT_VERSION = 3;
export const CHECKPOINT_FORMAT = "longshort-checkpoint";

export interface LSTMConfig {
  kind: "lstm";
  units: number;
  inputDim: number | null;
  returnSequences: boolean;
  stateful: boolean;
  batchSize: number | null;
  unitForgetBias: boolean;
  kernelInitializer: InitializerName;
  recurrentInitializer: InitializerName;
  /** Version 2 only (version 1 means "sigmoid", true, 0 and 0). */
  recurrentActivation?: RecurrentActivation;
  useBias?: boolean;
  dropout?: number;
  recurrentDropout?: number;
  /** Version 3 only (before it: false and false). */
  goBackwards?: boolean;
  zeroOutputForMask?: boolean;
}

/** Version 3 only: the forward direction's configuration (the backward one is its copy reading the other way). */
export interface BidirectionalConfig {
  kind: "bidirectional";
  mergeMode: MergeMode;
  layer: LSTMConfig | GRUConfig;
}

/** Version 3 only; every field is always written. */
export interface GRUConfig {
  kind: "gru";
  units: number;
  inputDim: number | null;
  returnSequences: boolean;
  stateful: boolean;
  batchSize: number | null;
  resetAfter: boolean;
  kernelInitializer: InitializerName;
  recurrentInitializer: InitializerName;
  recurrentActivation: RecurrentActivation;
  useBias: boolean;
  dropout: number;
  recurrentDropout: number;
  goBackwards: boolean;
  zeroOutputForMask: boolean;
}

/** Version 3 only. `inputDim` is the vocabulary (Keras's name), not the features of a step (one id). */
export interface EmbeddingConfig {
  kind: "embedding";
  inputDim: number;
  outputDim: number;
  maskZero: boolean;
  embeddingsInitializer: EmbeddingInitializer;
}

export interface DenseConfig {
  kind: "dense";
  units: number;
  activation: Activation;
  inputDim: number | null;
  /** Version 2 only (version 1 means true). */
  useBias?: boolean;
}

export interface CompileConfig {
  loss: LossName;
  /** With loss "huber" only: its delta. */
  huberDelta?: number;
  metrics: MetricName[];
  onNonFinite: "throw" | "skip";
  /** The optimizer's options; `learningRate` is a number, or a schedule as `{ schedule, config }` with every
   * option of the schedule present (e.g. `{ schedule: "exponentialDecay", config: { initialLearningRate: 0.01,
   * decaySteps: 100, decayRate: 0.5, staircase: false } }`; CosineDecay's `warmupTarget` null when none). */
  optimizer: { name: OptimizerName; config: Record<string, number | boolean | ScheduleJSON> };
}

/** A flat array stored as base64 of its little-endian bytes. */
export interface EncodedArray {
  name: string;
  shape: number[];
  dtype: DType;
  data: string;
}

/** The in-memory checkpoint: plain JSON, what `checkpointToJSON` returns and `checkpointFromJSON` takes. */
export interface CheckpointJSON {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  config: {
    /** Version 2: the Masking layer the model starts with ({ maskValue }), or null. */
    masking?: { maskValue: number } | null;
    dtype: DType;
    seed: string;
    layers: (LSTMConfig | GRUConfig | BidirectionalConfig | DenseConfig | EmbeddingConfig)[];
    /** null when the model was never compiled. */
    compile: CompileConfig | null;
  };
  /** In getWeights order; null when the model is not built yet. */
  weights: EncodedArray[] | null;
  /** null when the model was never compiled. Slots: Adam [m, v], SGD [velocity], float64. */
  optimizer: { iterations: number; slots: EncodedArray[] } | null;
  /** The fixed batch size of a stateful model (null if not fixed) and each LSTM's last state (null if none). */
  /** Per recurrent layer, its states by name ({ h, c } for an LSTM, { h } for a GRU), or null before any pass. */
  states: { batchSize: number | null; layers: ({ h: EncodedArray; c?: EncodedArray; hBackward?: EncodedArray; cBackward?: EncodedArray } | null)[] };
  /** The ARC4 state of the shuffling RNG (seedrandom's `state()`). */
  shuffleRng: { i: number; j: number; S: number[] };
  /** The ARC4 state of the dropout RNG; written when a layer has dropout (version 2). */
  dropoutRng?: { i: number; j: number; S: number[] };
}

// -----------------------------------------------------------------------------------------------
// Little-endian byte encoding

export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function encodeArray(name: string, a: FloatArray, shape: number[]): EncodedArray {
  const dtype: DType = a instanceof Float32Array ? "float32" : "float64";
  let bytes: Uint8Array;
  if (LITTLE_ENDIAN) {
    bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  } else {
    bytes = new Uint8Array(a.byteLength);
    const dv = new DataView(bytes.buffer);
    for (let k = 0; k < a.length; k++) {
      if (dtype === "float32") dv.setFloat32(4 * k, a[k]!, true);
      else dv.setFloat64(8 * k, a[k]!, true);
    }
  }
  return { name, shape: shape.slice(), dtype, data: base64Encode(bytes) };
}

// -----------------------------------------------------------------------------------------------
// Model → JSON

/** The format version a model needs: the oldest whose fields say every option its layers use. */
function versionFor(layers: readonly Layer[], masking: number | null): number {
  if (layers.some((l) => l instanceof Embedding || l instanceof GRU || l instanceof Bidirectional || (l instanceof LSTM && (l.goBackwards || l.zeroOutputForMask)))) return 3;
  if (masking !== null) return 2;
  return layers.some((l) => ((l.kind === "lstm" || l.kind === "gru" || l.kind === "dense") && !l.useBias) || (l instanceof LSTM && (l.recurrentActivation !== "sigmoid" || l.dropout > 0 || l.recurrentDropout > 0))) ? 2 : 1;
}

function layerConfig(l: Layer, version: number): LSTMConfig | GRUConfig | BidirectionalConfig | DenseConfig | EmbeddingConfig {
  if (l instanceof Bidirectional) {
    return { kind: "bidirectional", mergeMode: l.mergeMode, layer: layerConfig(l.forwardLayer, version) as LSTMConfig | GRUConfig };
  }
  if (l instanceof Embedding) {
    return { kind: "embedding", inputDim: l.inputDim, outputDim: l.units, maskZero: l.maskZero, embeddingsInitializer: l.embeddingsInitializer };
  }
  if (l instanceof GRU) {
    return {
      kind: "gru", units: l.units, inputDim: l.inputDim ?? null, returnSequences: l.returnSequences, stateful: l.stateful,
      batchSize: l.batchSize ?? null, resetAfter: l.resetAfter, kernelInitializer: l.kernelInitializer,
      recurrentInitializer: l.recurrentInitializer, recurrentActivation: l.recurrentActivation, useBias: l.useBias,
      dropout: l.dropout, recurrentDropout: l.recurrentDropout, goBackwards: l.goBackwards, zeroOutputForMask: l.zeroOutputForMask,
    };
  }
  if (l instanceof LSTM) {
    const c: LSTMConfig = {
      kind: "lstm", units: l.units, inputDim: l.inputDim ?? null, returnSequences: l.returnSequences,
      stateful: l.stateful, batchSize: l.batchSize ?? null, unitForgetBias: l.unitForgetBias,
      kernelInitializer: l.kernelInitializer, recurrentInitializer: l.recurrentInitializer,
    };
    if (version >= 2) {
      c.recurrentActivation = l.recurrentActivation; c.useBias = l.useBias;
      c.dropout = l.dropout; c.recurrentDropout = l.recurrentDropout;
    }
    if (version >= 3) { c.goBackwards = l.goBackwards; c.zeroOutputForMask = l.zeroOutputForMask; }
    return c;
  }
  const c: DenseConfig = { kind: "dense", units: l.units, activation: l.activation, inputDim: l.inputDim ?? null };
  if (version >= 2) c.useBias = l.useBias;
  return c;
}

/** The optimizer's options without the unset ones; a schedule is already plain JSON (`{ schedule, config }`). */
function optimizerConfig(opt: Optimizer): Record<string, number | boolean | ScheduleJSON> {
  const out: Record<string, number | boolean | ScheduleJSON> = {};
  for (const [k, v] of Object.entries(opt.config())) if (v !== undefined) out[k] = v;
  return out;
}

/** The engine's whole state as a checkpoint (what checkpointToJSON and `model.toJSON()` return). */
export function engineToJSON(e: Engine): CheckpointJSON {
  let weights: EncodedArray[] | null = null;
  if (e.built) {
    const names = e.weightNames(), shapes = e.weightShapes();
    weights = [];
    let off = 0;
    shapes.forEach((shape, i) => {
      const n = shape.reduce((a, b) => a * b, 1);
      weights!.push(encodeArray(names[i]!, e.params.subarray(off, off + n), shape));
      off += n;
    });
  }
  const opt = e.optimizer;
  const compiled = opt !== null && e.loss !== null;
  const slotNames = opt?.slotNames() ?? [];
  const version = versionFor(e.layers, e.maskingValue);
  return {
    format: CHECKPOINT_FORMAT,
    version,
    config: {
      ...(version >= 2 ? { masking: e.maskingValue === null ? null : { maskValue: e.maskingValue } } : {}),
      dtype: e.dtype,
      seed: e.seed,
      layers: e.layers.map((l) => layerConfig(l, version)),
      compile: compiled
        ? {
          loss: e.loss!, ...(e.loss === "huber" ? { huberDelta: e.huberDelta } : {}), metrics: e.metrics.slice(), onNonFinite: e.onNonFinite,
          optimizer: { name: opt!.name, config: optimizerConfig(opt!) },
        }
        : null,
    },
    weights,
    optimizer: compiled
      ? {
        iterations: opt!.iterations,
        slots: opt!.slots().map((s, i) => encodeArray(slotNames[i] ?? `slot${i}`, s, [s.length])),
      }
      : null,
    states: {
      batchSize: e.batchSize ?? null,
      layers: e.rnns.map((l, i) => {
        const s = e.state[i];
        if (!s) return null;
        const rows = e.stateRows(i), out: Record<string, EncodedArray> = {};
        l.stateNames.forEach((nm, k) => { out[nm] = encodeArray(`${l.kind}_${i}/${nm}`, s[k]!, [rows, l.stateUnits]); });
        return out as { h: EncodedArray; c?: EncodedArray };
      }),
    },
    shuffleRng: e.shuffleRng.state() as CheckpointJSON["shuffleRng"],
    ...(e.hasDropout ? { dropoutRng: e.dropoutRng.state() as CheckpointJSON["shuffleRng"] } : {}),
  };
}

