/**
 * The TensorFlow.js Layers format, in and out.
 *
 * A tf.io.ModelArtifacts object holds `modelTopology` (the Keras JSON config of the model), `weightSpecs`
 * (name, shape and dtype of every weight, in the order of the bytes) and `weightData` (the weights' bytes,
 * little-endian, one after the other). `tf.loadLayersModel(tf.io.fromMemory(artifacts))` loads what
 * `toTfjs` writes; `fromTfjs` reads what TensorFlow.js saves (`model.save(tf.io.withSaveHandler(…))`) and
 * what tensorflowjs_converter writes from a Keras model (a folder: model.json + weight files, which
 * `tfjsArtifactsFromModelJSON` turns into artifacts, and `tfjsModelJSON` writes).
 *
 * Layouts are Keras's, which are longshort's: LSTM kernel [F, 4H], recurrent_kernel [H, 4H], bias [4H] with
 * the gate blocks in the order i, f, c, o; Dense kernel [In, D], bias [D].
 *
 * Legend: F input features, H units, D head units.
 *
 * Everything read is untrusted: every field is checked, with sizes counted against the bytes actually
 * given, before anything sized by the file is allocated; a bad file fails with FormatError naming the field.
 */
import { Sequential, type RunOptions, checkRunOptions } from "../model.js";
import type { Layer } from "../engine.js";
import { LSTM, type RecurrentActivation } from "../layers/lstm.js";
import { Dense, type Activation } from "../layers/dense.js";
import { Masking } from "../layers/masking.js";
import type { InitializerName } from "../init.js";
import { checkDType, type DType } from "../tensor/tensor.js";
import { assemble, type ImportedWeight } from "./build.js";
import { FormatError, StateError, ValueError, checkKeys, fmtValue } from "../errors.js";

/** The tfjs-layers version whose format `toTfjs` writes (the one the tests load it with). */
export const TFJS_LAYERS_VERSION = "4.22.0";

/** One entry of `weightSpecs` (tf.io.WeightsManifestEntry). */
export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  /** "model" or "optimizer"; optimizer weights are skipped on import. */
  group?: string;
  /** Converter quantization (`--quantize_uint8` …): the bytes hold `dtype` uint8/uint16/float16 values. */
  quantization?: { dtype: string; min?: number; scale?: number; original_dtype?: string };
}

/** What `toTfjs` returns: tf.io.ModelArtifacts of a Layers model. */
export interface TfjsArtifacts {
  /** The Keras JSON config: { class_name: "Sequential", config: { name, layers }, keras_version, backend }. */
  modelTopology: Record<string, unknown>;
  weightSpecs: TfjsWeightSpec[];
  /** The weights, float32 little-endian, in weightSpecs order. */
  weightData: ArrayBuffer;
  format: "layers-model";
  generatedBy: string;
  convertedBy: string | null;
}

/**
 * What `fromTfjs` reads: any tf.io.ModelArtifacts of a Layers model (weightData may be split in parts).
 * The fields are optional in the type, as in tfjs's, and checked when read.
 */
export interface TfjsArtifactsInput {
  modelTopology?: object;
  weightSpecs?: readonly object[];
  weightData?: ArrayBuffer | ArrayBuffer[] | ArrayBufferView;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
}

/** The model.json of a folder: the topology and a manifest of weight files (groups of shards). */
export interface TfjsModelJSON {
  modelTopology: object;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  weightsManifest: { paths: string[]; weights: TfjsWeightSpec[] }[];
}

/** `dtype` and `seed`, and where the model runs (RunOptions: `backend`, `fma`). */
export interface FromTfjsOptions extends RunOptions {
  /** The imported model's dtype. Default "float32", the dtype the weights are stored in. */
  dtype?: DType;
  /** The model's seed (shuffling, and initialisation if it is ever rebuilt). */
  seed?: number | string;
}

// -------------------------------------------------------------------------------------------------
// Export

const ZEROS_INIT = { class_name: "Zeros", config: {} };

/** Keras's serialisation of longshort's initialisers (used only if someone re-initialises the model). */
function initializerConfig(name: InitializerName): object {
  switch (name) {
    case "glorotUniform": return { class_name: "GlorotUniform", config: { seed: null } };
    case "orthogonal": return { class_name: "Orthogonal", config: { gain: 1, seed: null } };
    case "zeros": return ZEROS_INIT;
  }
}

/** Keras-style layer names: lstm, lstm_1, …, dense, dense_1, … */
function layerNames(layers: readonly Layer[]): string[] {
  let li = 0, di = 0;
  return layers.map((l) => {
    const k = l instanceof LSTM ? li++ : di++;
    const base = l instanceof LSTM ? "lstm" : "dense";
    return k === 0 ? base : `${base}_${k}`;
  });
}

/**
 * The model as TensorFlow.js ModelArtifacts, which `tf.loadLayersModel(tf.io.fromMemory(artifacts))` loads
 * into a tf.Sequential that predicts what the model predicts. The topology follows what tfjs-layers itself
 * saves (snake_case Keras configs, `batch_input_shape` on the first layer: [batchSize of a stateful model or
 * null, null, F]); weights are named "<layer>/kernel", "<layer>/recurrent_kernel", "<layer>/bias" and stored
 * as little-endian float32 (a float64 model is rounded). A per-step model's Dense layers are plain Dense
 * layers: on a 3D input a Keras Dense applies to every step.
 *
 * @example
 * const artifacts = toTfjs(model);
 * const tfModel = await tf.loadLayersModel(tf.io.fromMemory(artifacts));   // import * as tf from "@tensorflow/tfjs"
 * tfModel.predict(tf.tensor3d(x));                                           // what model.predict(x) gives
 */
export function toTfjs(model: Sequential): TfjsArtifacts {
  if (!(model instanceof Sequential)) {
    throw new ValueError(`toTfjs model: expected a Sequential, got ${fmtValue(model)}`);
  }
  const F = model.inputDim;
  if (F === undefined) {
    throw new StateError(`toTfjs: the model is not built (its input features are unknown); call model.build(inputDim) or run it on data first`);
  }
  if (model.stateful && model.batchSize === undefined) {
    throw new StateError(`toTfjs: a stateful model needs its batch size in the topology (Keras batch_input_shape); call model.setBatchSize(n) first`);
  }
  const layers = model.layers;
  const names = layerNames(layers);
  const batch = model.stateful ? model.batchSize! : null;
  const masking = model.masking;
  const configs: object[] = layers.map((l, i) => {
    const name = names[i]!;
    // As tfjs writes it: the input shape and dtype on the first layer only (the Masking layer, when there is one).
    const head = i === 0 && !masking ? { name, trainable: true, batch_input_shape: [batch, null, F], dtype: "float32" } : { name, trainable: true };
    if (l instanceof LSTM) {
      return {
        class_name: "LSTM",
        config: {
          ...head,
          units: l.units,
          activation: "tanh",
          recurrent_activation: l.recurrentActivation === "hardSigmoid" ? "hard_sigmoid" : "sigmoid",
          use_bias: l.useBias,
          kernel_initializer: initializerConfig(l.kernelInitializer),
          recurrent_initializer: initializerConfig(l.recurrentInitializer),
          bias_initializer: ZEROS_INIT,
          unit_forget_bias: l.unitForgetBias,
          kernel_regularizer: null, recurrent_regularizer: null, bias_regularizer: null, activity_regularizer: null,
          kernel_constraint: null, recurrent_constraint: null, bias_constraint: null,
          dropout: l.dropout,
          recurrent_dropout: l.recurrentDropout,
          implementation: 2,
          return_sequences: l.returnSequences,
          return_state: false,
          go_backwards: false,
          stateful: l.stateful,
          unroll: false,
        },
      };
    }
    return {
      class_name: "Dense",
      config: {
        units: l.units,
        activation: l.activation,
        use_bias: l.useBias,
        kernel_initializer: initializerConfig("glorotUniform"),
        bias_initializer: ZEROS_INIT,
        kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null,
        kernel_constraint: null, bias_constraint: null,
        ...head,
      },
    };
  });

  if (masking) {
    configs.unshift({
      class_name: "Masking",
      config: { name: "masking", trainable: true, batch_input_shape: [batch, null, F], dtype: "float32", mask_value: masking.maskValue },
    });
  }
  // Weights: getWeights order, which is Keras's per layer (kernel, recurrent_kernel, bias).
  const weights = model.getWeights();
  const specNames = layers.flatMap((l, i) => (l instanceof LSTM ? lstmSlots(l.useBias) : denseSlots(l.useBias)).map((s) => `${names[i]}/${s}`));
  const weightSpecs: TfjsWeightSpec[] = weights.map((w, k) => ({ name: specNames[k]!, shape: w.shape.slice(), dtype: "float32" }));
  const total = weights.reduce((s, w) => s + w.data.length, 0);
  const weightData = new ArrayBuffer(total * 4);
  const view = new DataView(weightData);
  let off = 0;
  for (const w of weights) {
    for (let k = 0; k < w.data.length; k++, off += 4) view.setFloat32(off, w.data[k]!, true);
  }
  return {
    modelTopology: {
      class_name: "Sequential",
      config: { name: "sequential", layers: configs },
      keras_version: `tfjs-layers ${TFJS_LAYERS_VERSION}`,
      backend: "tensor_flow.js",
    },
    weightSpecs,
    weightData,
    format: "layers-model",
    generatedBy: "longshort",
    convertedBy: null,
  };
}

function lstmSlots(useBias: boolean): string[] {
  return useBias ? ["kernel", "recurrent_kernel", "bias"] : ["kernel", "recurrent_kernel"];
}

function denseSlots(useBias: boolean): string[] {
  return useBias ? ["kernel", "bias"] : ["kernel"];
}

// -------------------------------------------------------------------------------------------------
// Import: the topology

const SRC = "tfjs artifacts";

function fail(msg: string): never {
  throw new FormatError(`${SRC}: ${msg}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && !(v instanceof ArrayBuffer);
}

/** A layer of the topology as longshort will build it, with the names its weights may carry. */
interface LayerPlan {
  layer: Layer;
  /** Where it is in the topology, for messages: `layers[2] (LSTM "lstm_1")`. */
  where: string;
  /** The layer's name and, for TimeDistributed, the wrapped layer's name too. */
  names: string[];
  /** Keras's weight names in getWeights order (and in the order of Keras 3's numbered variables). */
  slots: string[];
}

interface Topology {
  plans: LayerPlan[];
  inputDim: number;
  /** Keras's Masking layer first, or null. */
  masking: Masking | null;
}

/** Reads an optional boolean field, FormatError if it is anything else. */
function boolField(where: string, cfg: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = cfg[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") fail(`${where}: config.${key}: expected true or false, got ${fmtValue(v)}`);
  return v;
}

/** A positive integer field (units). */
function unitsField(where: string, cfg: Record<string, unknown>): number {
  const v = cfg["units"];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) fail(`${where}: config.units: expected a positive integer, got ${fmtValue(v)}`);
  return v;
}

/** An activation, which must be given by name (an object is a custom or wrapped function: refused). */
function activationName(where: string, key: string, v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === "string") return v;
  fail(`${where}: config.${key}: expected an activation name, got ${fmtValue(v)} (custom activations are not supported)`);
}

/** A dropout rate in [0, 1) (Keras 3 LSTMCell semantics, which longshort's LSTM follows); missing means 0. */
function dropoutRate(where: string, cfg: Record<string, unknown>, key: string): number {
  const v = cfg[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !(v >= 0 && v < 1)) fail(`${where}: config.${key}: expected a rate in [0, 1), got ${fmtValue(v)}`);
  return v as number;
}

function parseLSTM(where: string, cfg: Record<string, unknown>, keras3: boolean, batchSize: number | undefined): LayerPlan {
  const units = unitsField(where, cfg);
  const act = activationName(where, "activation", cfg["activation"]) ?? "tanh"; // Keras's default
  if (act !== "tanh") fail(`${where}: config.activation ${JSON.stringify(act)} is not supported; longshort's LSTM computes "tanh"`);
  const ra = activationName(where, "recurrent_activation", cfg["recurrent_activation"]);
  if (ra === null) fail(`${where}: config.recurrent_activation is missing (its default differs between Keras 2, Keras 3 and TensorFlow.js)`);
  let recurrentActivation: RecurrentActivation;
  if (ra === "sigmoid") recurrentActivation = "sigmoid";
  else if (ra === "hard_sigmoid") {
    if (keras3) {
      fail(`${where}: config.recurrent_activation "hard_sigmoid" of Keras 3 is relu6(x + 3) / 6, a different function from the ` +
        `clip(0.2·x + 0.5, 0, 1) of Keras 2 and TensorFlow.js that longshort's "hardSigmoid" computes`);
    }
    recurrentActivation = "hardSigmoid";
  } else fail(`${where}: config.recurrent_activation ${JSON.stringify(ra)} is not supported; expected "sigmoid" or "hard_sigmoid"`);
  for (const key of ["return_state", "go_backwards", "time_major"]) {
    if (boolField(where, cfg, key, false)) fail(`${where}: config.${key} true is not supported`);
  }
  const dropout = dropoutRate(where, cfg, "dropout"), recurrentDropout = dropoutRate(where, cfg, "recurrent_dropout");
  boolField(where, cfg, "unroll", false); // a speed setting: same results either way
  const useBias = boolField(where, cfg, "use_bias", true);
  const stateful = boolField(where, cfg, "stateful", false);
  const layer = new LSTM({
    units,
    returnSequences: boolField(where, cfg, "return_sequences", false),
    stateful,
    batchSize: stateful ? batchSize : undefined,
    unitForgetBias: boolField(where, cfg, "unit_forget_bias", true),
    recurrentActivation,
    useBias,
    dropout,
    recurrentDropout,
  });
  return { layer, where, names: [], slots: lstmSlots(useBias) };
}

const DENSE_ACTIVATIONS: Record<string, Activation> = { linear: "linear", sigmoid: "sigmoid", tanh: "tanh", relu: "relu", softmax: "softmax" };

function parseDense(where: string, cfg: Record<string, unknown>): LayerPlan {
  const units = unitsField(where, cfg);
  const act = activationName(where, "activation", cfg["activation"]) ?? "linear";
  const activation = DENSE_ACTIVATIONS[act];
  if (activation === undefined || !Object.hasOwn(DENSE_ACTIVATIONS, act)) {
    fail(`${where}: config.activation ${JSON.stringify(act)} is not supported; expected one of ${Object.keys(DENSE_ACTIVATIONS).map((a) => JSON.stringify(a)).join(", ")}`);
  }
  const useBias = boolField(where, cfg, "use_bias", true);
  return { layer: new Dense({ units, activation, useBias }), where, names: [], slots: denseSlots(useBias) };
}

/** A Keras batch shape [batch, timesteps, features] → its batch size (or undefined) and features. */
function parseBatchShape(where: string, v: unknown): { batch: number | undefined; features: number } {
  if (!Array.isArray(v)) fail(`${where}: expected a batch shape [batch, timesteps, features], got ${fmtValue(v)}`);
  if (v.length !== 3) {
    fail(`${where}: expected a batch shape [batch, timesteps, features] (3 entries; the LSTM needs a feature dimension), got ${v.length} entries`);
  }
  const dim = (d: unknown, what: string, nullable: boolean): number | undefined => {
    if ((d === null || d === undefined) && nullable) return undefined;
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d <= 0) {
      fail(`${where}: ${what}: expected ${nullable ? "null or " : ""}a positive integer, got ${fmtValue(d)}`);
    }
    return d;
  };
  const batch = dim(v[0], "batch size", true);
  dim(v[1], "timesteps", true);
  return { batch, features: dim(v[2], "features", false)! };
}

/** The Keras major version the topology was written by: 3, or 2 for Keras 2, tfjs and unknown writers. */
function kerasMajor(top: Record<string, unknown>, generatedBy: unknown, layers: unknown[]): 2 | 3 {
  const kv = top["keras_version"];
  if (typeof kv === "string") return /^3\./.test(kv) ? 3 : 2;
  if (typeof generatedBy === "string" && /^keras v3\./.test(generatedBy)) return 3;
  // Only Keras 3 writes `batch_shape` (Keras 2 and tfjs write `batch_input_shape`).
  const first = layers[0];
  if (isObject(first) && isObject(first["config"]) && first["config"]["batch_shape"] !== undefined) return 3;
  return 2;
}

/**
 * Reads the topology into layer plans, in order, checking every layer and refusing by name whatever the
 * engine does not compute. Nothing here is sized by the file beyond the layer objects themselves.
 */
function parseTopology(topology: unknown, generatedBy: unknown): Topology {
  if (!isObject(topology)) fail(`modelTopology: expected a Keras model config object, got ${fmtValue(topology)}`);
  // The converter wraps the config: { keras_version, backend, model_config: { class_name, config }, training_config }.
  let top = topology;
  let model: Record<string, unknown> = topology;
  if (top["model_config"] !== undefined) {
    if (!isObject(top["model_config"])) fail(`modelTopology.model_config: expected an object, got ${fmtValue(top["model_config"])}`);
    model = top["model_config"];
    if (model["keras_version"] !== undefined && top["keras_version"] === undefined) top = model;
  }
  const cls = model["class_name"];
  if (cls !== "Sequential") {
    if (cls === "Model" || cls === "Functional") {
      fail(`modelTopology.class_name ${JSON.stringify(cls)}: functional models are not supported; longshort imports a Sequential model`);
    }
    fail(`modelTopology.class_name: expected "Sequential", got ${fmtValue(cls)}`);
  }
  // Keras ≤ 2.2 wrote the layers as a bare array; later { name, layers, … }.
  const config = model["config"];
  let layersV: unknown;
  let buildInputShape: unknown;
  if (Array.isArray(config)) layersV = config;
  else if (isObject(config)) {
    layersV = config["layers"];
    buildInputShape = config["build_input_shape"];
  } else fail(`modelTopology.config: expected { name, layers } or an array of layers, got ${fmtValue(config)}`);
  if (!Array.isArray(layersV) || layersV.length === 0) fail(`modelTopology.config.layers: expected a non-empty array of layers, got ${fmtValue(layersV)}`);
  const layers = layersV as unknown[];
  const keras3 = kerasMajor(top, generatedBy, layers) === 3;

  // The input shape: an InputLayer first, or the first layer's batch_input_shape (Keras 3: batch_shape),
  // or (Keras 3 without an Input) the Sequential's build_input_shape or the first layer's build_config.
  let shape: { batch: number | undefined; features: number } | undefined;
  const layerAt = (i: number): { cls: string; cfg: Record<string, unknown>; where: string } => {
    const l = layers[i];
    if (!isObject(l)) fail(`modelTopology layers[${i}]: expected { class_name, config }, got ${fmtValue(l)}`);
    const c = l["class_name"], cfg = l["config"];
    if (typeof c !== "string") fail(`modelTopology layers[${i}].class_name: expected a string, got ${fmtValue(c)}`);
    if (!isObject(cfg)) fail(`modelTopology layers[${i}] (${c}).config: expected an object, got ${fmtValue(cfg)}`);
    const name = cfg["name"];
    return { cls: c, cfg, where: `layers[${i}] (${c}${typeof name === "string" ? ` ${JSON.stringify(name)}` : ""})` };
  };
  let start = 0;
  const first = layerAt(0);
  if (first.cls === "InputLayer") {
    const key = first.cfg["batch_input_shape"] !== undefined ? "batch_input_shape" : "batch_shape";
    shape = parseBatchShape(`${first.where}: config.${key}`, first.cfg[key]);
    start = 1;
  }
  const plans: LayerPlan[] = [];
  let seenDense = false, masking: Masking | null = null;
  for (let i = start; i < layers.length; i++) {
    const { cls: c, cfg, where } = layerAt(i);
    if (c === "Masking") {
      // Keras's Masking, first (after an InputLayer): its mask_value; it may carry the input shape.
      if (i !== start) fail(`${where}: a Masking layer is only supported first`);
      const mv = cfg["mask_value"] ?? 0;
      if (typeof mv !== "number" || !Number.isFinite(mv)) fail(`${where}: config.mask_value: expected a finite number, got ${fmtValue(mv)}`);
      masking = new Masking({ maskValue: mv as number });
      if (shape === undefined) {
        const key = cfg["batch_input_shape"] !== undefined ? "batch_input_shape" : cfg["batch_shape"] !== undefined ? "batch_shape" : null;
        if (key !== null) shape = parseBatchShape(`${where}: config.${key}`, cfg[key]);
      }
      start = i + 1;
      continue;
    }
    if (shape === undefined && i === start) {
      const key = cfg["batch_input_shape"] !== undefined ? "batch_input_shape" : cfg["batch_shape"] !== undefined ? "batch_shape" : null;
      const buildCfg = cfg["build_config"];
      if (key !== null) shape = parseBatchShape(`${where}: config.${key}`, cfg[key]);
      else if (buildInputShape !== undefined && buildInputShape !== null) shape = parseBatchShape(`modelTopology.config.build_input_shape`, buildInputShape);
      else if (isObject(buildCfg) && buildCfg["input_shape"] !== undefined) shape = parseBatchShape(`${where}: build_config.input_shape`, buildCfg["input_shape"]);
      else fail(`${where}: no input shape (expected config.batch_input_shape on the first layer, or an InputLayer first)`);
    }
    let plan: LayerPlan;
    const layerName = cfg["name"];
    if (typeof layerName !== "string" || layerName === "") fail(`${where}: config.name: expected a non-empty string, got ${fmtValue(layerName)}`);
    if (c === "LSTM") {
      if (seenDense) fail(`${where}: an LSTM after a Dense layer is not supported; longshort stacks LSTM layers, then Dense layers`);
      plan = parseLSTM(where, cfg, keras3, shape!.batch);
      plan.names.push(layerName);
    } else if (c === "Dense" || c === "TimeDistributed") {
      if (plans.length === 0) fail(`${where}: the first layer must be an LSTM`);
      if (c === "Dense") {
        plan = parseDense(where, cfg);
        plan.names.push(layerName);
      } else {
        const inner = cfg["layer"];
        if (!isObject(inner) || inner["class_name"] !== "Dense" || !isObject(inner["config"])) {
          const ic = isObject(inner) ? inner["class_name"] : inner;
          fail(`${where}: config.layer: only a wrapped Dense is supported, got ${typeof ic === "string" ? JSON.stringify(ic) : fmtValue(ic)}`);
        }
        const lastLSTM = plans.filter((p) => p.layer instanceof LSTM).pop()!.layer as LSTM;
        if (!lastLSTM.returnSequences) {
          fail(`${where}: TimeDistributed needs a sequence input (the LSTM below must have return_sequences true)`);
        }
        plan = parseDense(`${where} layer`, inner["config"]);
        plan.names.push(layerName);
        const innerName = inner["config"]["name"];
        if (typeof innerName === "string" && innerName !== "") plan.names.push(innerName);
      }
      seenDense = true;
    } else if (c === "InputLayer") {
      fail(`${where}: an InputLayer is only supported as the first layer`);
    } else {
      fail(`${where}: layer class ${JSON.stringify(c)} is not supported; longshort imports LSTM layers followed by Dense (or TimeDistributed Dense) layers`);
    }
    const prev = plans[plans.length - 1]?.layer;
    if (plan.layer instanceof LSTM && prev instanceof LSTM && !prev.returnSequences) {
      fail(`${where}: the LSTM below it has return_sequences false, so this LSTM would get no sequence`);
    }
    plans.push(plan);
  }
  if (plans.length === 0) fail(`modelTopology.config.layers: no LSTM or Dense layer after the InputLayer`);
  if (!seenDense) fail(`modelTopology.config.layers: expected one or more Dense layers after the LSTM layers, got none`);
  const seen = new Map<string, string>();
  for (const p of plans) {
    for (const n of p.names) {
      if (seen.has(n) && seen.get(n) !== p.where) fail(`${p.where}: the layer name ${JSON.stringify(n)} is also used by ${seen.get(n)}`);
      seen.set(n, p.where);
    }
  }
  return { plans, inputDim: shape!.features, masking };
}

// -------------------------------------------------------------------------------------------------
// Import: weight specs and bytes

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8 };
const QUANT_BYTES: Record<string, number> = { uint8: 1, uint16: 2, float16: 2 };

interface Spec {
  index: number;
  name: string;
  shape: number[];
  dtype: string;
  optimizer: boolean;
  quant: { dtype: "uint8" | "uint16" | "float16"; min: number; scale: number } | null;
  /** Byte offset into weightData, and the count of values. */
  offset: number;
  count: number;
}

/**
 * Checks every spec's fields and sizes, in order, against the byte count actually given; returns the specs
 * with their byte offsets. Nothing is allocated by size here.
 */
function parseSpecs(src: string, where: string, specsV: unknown, dataBytes: number, dataLabel: string): Spec[] {
  const fail: (msg: string) => never = (msg) => { throw new FormatError(`${src}: ${msg}`); };
  if (!Array.isArray(specsV)) fail(`${where}: expected an array of { name, shape, dtype }, got ${fmtValue(specsV)}`);
  const specs: Spec[] = [];
  const names = new Set<string>();
  let offset = 0;
  specsV.forEach((s: unknown, i: number) => {
    const at = `${where}[${i}]`;
    if (!isObject(s)) fail(`${at}: expected { name, shape, dtype }, got ${fmtValue(s)}`);
    const name = s["name"];
    if (typeof name !== "string" || name === "") fail(`${at}.name: expected a non-empty string, got ${fmtValue(name)}`);
    const who = `${at} (${JSON.stringify(name)})`;
    if (names.has(name)) fail(`${who}: the name appears twice`);
    names.add(name);
    const shape = s["shape"];
    if (!Array.isArray(shape) || shape.length > 8 || shape.some((d) => typeof d !== "number" || !Number.isSafeInteger(d) || d < 0)) {
      fail(`${who}.shape: expected a list of at most 8 non-negative integers, got ${Array.isArray(shape) ? JSON.stringify(shape.slice(0, 9)) : fmtValue(shape)}`);
    }
    const dtype = s["dtype"];
    if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_BYTES, dtype)) {
      fail(`${who}.dtype: expected one of "float32", "int32", "bool", "complex64", got ${fmtValue(dtype)}`);
    }
    const group = s["group"];
    if (group !== undefined && group !== null && typeof group !== "string") fail(`${who}.group: expected a string, got ${fmtValue(group)}`);
    let quant: Spec["quant"] = null;
    let bytesPer = DTYPE_BYTES[dtype]!;
    const q = s["quantization"];
    if (q !== undefined && q !== null) {
      if (!isObject(q)) fail(`${who}.quantization: expected { dtype, min, scale }, got ${fmtValue(q)}`);
      const qd = q["dtype"];
      if (typeof qd !== "string" || !Object.hasOwn(QUANT_BYTES, qd)) {
        fail(`${who}.quantization.dtype: expected "uint8", "uint16" or "float16", got ${fmtValue(qd)}`);
      }
      let min = 0, scale = 1;
      if (qd !== "float16") {
        const mn = q["min"], sc = q["scale"];
        if (typeof mn !== "number" || !Number.isFinite(mn) || typeof sc !== "number" || !Number.isFinite(sc)) {
          fail(`${who}.quantization: ${qd} quantization needs finite numbers min and scale, got min ${fmtValue(mn)}, scale ${fmtValue(sc)}`);
        }
        min = mn;
        scale = sc;
      }
      quant = { dtype: qd as "uint8" | "uint16" | "float16", min, scale };
      bytesPer = QUANT_BYTES[qd]!;
    }
    // The count, bounded as it grows by the bytes left, so that no product overflows or sizes anything.
    const left = dataBytes - offset;
    let count = 1;
    for (const d of shape as number[]) {
      count *= d;
      if (count * bytesPer > left) {
        fail(`${who}: shape ${JSON.stringify(shape)} needs more bytes than ${dataLabel} has left (${left} of ${dataBytes} bytes at byte ${offset})`);
      }
    }
    specs.push({ index: i, name, shape: (shape as number[]).slice(), dtype, optimizer: group === "optimizer", quant, offset, count });
    offset += count * bytesPer;
  });
  if (offset !== dataBytes) {
    fail(`${where} describe ${offset} bytes, but ${dataLabel} holds ${dataBytes} bytes`);
  }
  return specs;
}

/** The weight bytes as one Uint8Array: a single buffer is viewed, parts are concatenated in order. */
function weightBytes(v: unknown): Uint8Array {
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) {
    let total = 0;
    v.forEach((p, i) => {
      if (!(p instanceof ArrayBuffer)) fail(`weightData[${i}]: expected an ArrayBuffer, got ${fmtValue(p)}`);
      total += p.byteLength;
    });
    const out = new Uint8Array(total); // the sum of buffers that already exist
    let off = 0;
    for (const p of v as ArrayBuffer[]) {
      out.set(new Uint8Array(p), off);
      off += p.byteLength;
    }
    return out;
  }
  fail(`weightData: expected an ArrayBuffer or an array of ArrayBuffers, got ${fmtValue(v)}`);
}

const F32 = new Float32Array(1);
const F32_BITS = new Uint32Array(F32.buffer);

/**
 * IEEE 754 half precision → number, as tfjs's float16 dequantization: a normal half is re-based into the
 * float32 bit pattern (exponent bias 15 → 127, 10 → 23 fraction bits), a subnormal is frac · 2^-24, and
 * exponent 31 is Infinity or NaN. Exact in every case.
 */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 5.9604644775390625e-8; // 2^-24
  if (exp === 31) return frac ? NaN : sign * Infinity;
  F32_BITS[0] = ((exp - 15 + 127) << 23) | (frac << 13);
  return sign * F32[0]!;
}

/** A spec's values as float32 numbers (dequantized when quantized), read little-endian. */
function decode(spec: Spec, bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(spec.count); // count·bytesPer ≤ the bytes given, checked in parseSpecs
  const q = spec.quant;
  const o = spec.offset;
  if (q === null) for (let k = 0; k < spec.count; k++) out[k] = view.getFloat32(o + 4 * k, true);
  else if (q.dtype === "uint8") for (let k = 0; k < spec.count; k++) out[k] = view.getUint8(o + k) * q.scale + q.min;
  else if (q.dtype === "uint16") for (let k = 0; k < spec.count; k++) out[k] = view.getUint16(o + 2 * k, true) * q.scale + q.min;
  else for (let k = 0; k < spec.count; k++) out[k] = halfToFloat(view.getUint16(o + 2 * k, true));
  return out;
}

/**
 * Assigns every (non-optimizer) spec to a layer and a slot by its name, not its position: the layer is the
 * first path segment that names a layer of the topology ("lstm/lstm_cell/kernel", "lstm_LSTM1/kernel",
 * "time_distributed/kernel"; Keras 3 "layers/lstm/cell/vars/0"), the slot is the last segment (kernel,
 * recurrent_kernel, bias, or Keras 3's variable index), with any ":0" suffix dropped.
 */
function matchSpecs(plans: LayerPlan[], specs: Spec[]): Spec[][] {
  const byName = new Map<string, number>();
  plans.forEach((p, i) => p.names.forEach((n) => byName.set(n, i)));
  const slots: (Spec | undefined)[][] = plans.map((p) => p.slots.map(() => undefined));
  const allNames = plans.flatMap((p) => p.names);
  for (const s of specs) {
    if (s.optimizer) continue;
    const who = `weightSpecs[${s.index}] (${JSON.stringify(s.name)})`;
    const tokens = s.name.replace(/:\d+$/, "").split("/");
    const last = tokens.pop()!;
    const li = tokens.map((t) => byName.get(t)).find((v) => v !== undefined);
    if (li === undefined) {
      fail(`${who}: names no layer of the topology (layers: ${allNames.map((n) => JSON.stringify(n)).join(", ")})`);
    }
    const plan = plans[li]!;
    let k = plan.slots.indexOf(last);
    if (k < 0 && /^\d+$/.test(last) && Number(last) < plan.slots.length) k = Number(last);
    if (k < 0) fail(`${who}: ${JSON.stringify(last)} is not a weight of ${plan.where} (expected ${plan.slots.join(", ")})`);
    if (slots[li]![k] !== undefined) {
      fail(`${who}: ${plan.where} already has its ${plan.slots[k]} from weightSpecs[${slots[li]![k]!.index}] (${JSON.stringify(slots[li]![k]!.name)})`);
    }
    if (s.dtype !== "float32") fail(`${who}.dtype ${JSON.stringify(s.dtype)} is not supported; longshort reads float32 weights`);
    slots[li]![k] = s;
  }
  return slots.map((row, li) => row.map((s, k) => {
    if (s === undefined) fail(`weightSpecs: no weight for the ${plans[li]!.slots[k]} of ${plans[li]!.where}`);
    return s;
  }));
}

/**
 * A longshort model from TensorFlow.js ModelArtifacts of a Sequential Layers model: what tfjs saves
 * (`model.save(tf.io.withSaveHandler(async (a) => …))`) and what tensorflowjs_converter makes of a Keras 2
 * or Keras 3 model (read the folder with `tfjsArtifactsFromModelJSON`). The topology must be LSTM layers
 * (activation tanh, recurrent_activation sigmoid or Keras 2/tfjs hard_sigmoid) then Dense or
 * TimeDistributed(Dense) layers (linear, sigmoid, tanh or relu); an InputLayer may come first. Anything
 * else (GRU, Bidirectional, Dropout, Masking, go_backwards, return_state, Keras 3's
 * hard_sigmoid, a functional model, other weight dtypes) is refused by name. A stateful LSTM takes its batch
 * size from batch_input_shape. Weights are matched to layers by name, and must be float32 (or quantized
 * float32: uint8/uint16 affine or float16, dequantized as tfjs does).
 *
 * Throws FormatError for a bad or unsupported file, ValueError for bad options.
 *
 * @example
 * await tfModel.save(tf.io.withSaveHandler(async (a) => { artifacts = a; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } }; }));
 * const model = fromTfjs(artifacts);                      // a float32 Sequential
 * model.predict(x);                                       // what tfModel.predict(x) gives
 */
export function fromTfjs(artifacts: TfjsArtifactsInput, options: FromTfjsOptions = {}): Sequential {
  if (typeof options !== "object" || options === null) throw new ValueError(`fromTfjs options: expected an object, got ${fmtValue(options)}`);
  checkKeys("fromTfjs", options, ["dtype", "seed", "backend", "fma"]);
  const run = checkRunOptions("fromTfjs ", options.backend, options.fma);
  const dtype = checkDType("fromTfjs dtype", options.dtype ?? "float32");
  const seed = options.seed;
  if (seed !== undefined && (typeof seed !== "number" || !Number.isFinite(seed)) && typeof seed !== "string") {
    throw new ValueError(`fromTfjs seed: expected a finite number or a string, got ${fmtValue(seed)}`);
  }
  const a: unknown = artifacts;
  if (!isObject(a)) fail(`expected an object { modelTopology, weightSpecs, weightData }, got ${fmtValue(a)}`);
  const format = a["format"];
  if (format !== undefined && format !== null && format !== "layers-model") {
    fail(`format: expected "layers-model", got ${fmtValue(format)}${format === "graph-model" ? " (a graph model has no Keras layers to import)" : ""}`);
  }
  const { plans, inputDim, masking } = parseTopology(a["modelTopology"], a["generatedBy"]);
  if (a["weightData"] === undefined || a["weightData"] === null) fail(`weightData: missing (a topology without weights cannot be imported)`);
  const bytes = weightBytes(a["weightData"]);
  const specs = parseSpecs(SRC, "weightSpecs", a["weightSpecs"], bytes.byteLength, "the weightData");
  const matched = matchSpecs(plans, specs);
  const weights: ImportedWeight[] = [];
  matched.forEach((row) => row.forEach((s) => weights.push({ name: s.name, shape: s.shape, data: decode(s, bytes) })));
  return assemble(SRC, plans.map((p) => p.layer), inputDim, dtype, weights, seed, masking, run);
}

// -------------------------------------------------------------------------------------------------
// The folder format: model.json + weight files

/**
 * The model.json object of a TensorFlow.js folder for `artifacts`, whose weights go in one file
 * `weightsPath` (write `artifacts.weightData` there). tf.loadLayersModel("file://…/model.json") and
 * `tfjsArtifactsFromModelJSON` read the pair back.
 *
 * @example
 * const artifacts = toTfjs(model);
 * const json = tfjsModelJSON(artifacts);                          // weights in "weights.bin"
 * // writeFileSync("model/model.json", JSON.stringify(json)); writeFileSync("model/weights.bin", new Uint8Array(artifacts.weightData));
 */
export function tfjsModelJSON(
  artifacts: { modelTopology: object; weightSpecs: TfjsWeightSpec[]; format?: string; generatedBy?: string; convertedBy?: string | null },
  weightsPath = "weights.bin",
): TfjsModelJSON {
  if (!isObject(artifacts) || !isObject(artifacts.modelTopology) || !Array.isArray(artifacts.weightSpecs)) {
    throw new ValueError(`tfjsModelJSON artifacts: expected { modelTopology, weightSpecs, … } (as toTfjs returns), got ${fmtValue(artifacts)}`);
  }
  checkWeightsPath((m) => new ValueError(`tfjsModelJSON weightsPath: ${m}`), weightsPath);
  return {
    modelTopology: artifacts.modelTopology,
    format: artifacts.format ?? "layers-model",
    generatedBy: artifacts.generatedBy ?? "longshort",
    convertedBy: artifacts.convertedBy ?? null,
    weightsManifest: [{ paths: [weightsPath], weights: artifacts.weightSpecs }],
  };
}

/**
 * A path of a weights manifest must stay inside the model's folder: relative, no "..", no drive or scheme,
 * no backslash or NUL (the manifest is untrusted, and a caller maps paths to files).
 */
function checkWeightsPath(err: (m: string) => Error, p: unknown): void {
  if (typeof p !== "string" || p === "") throw err(`expected a non-empty relative path, got ${fmtValue(p)}`);
  if (p.startsWith("/") || /[\\:\0]/.test(p) || p.split("/").some((seg) => seg === ".." || seg === "")) {
    throw err(`${JSON.stringify(p)} is not a plain relative path inside the model's folder`);
  }
}

const JSON_SRC = "tfjs model.json";

function bad(msg: string): never {
  throw new FormatError(`${JSON_SRC}: ${msg}`);
}

/**
 * ModelArtifacts from a model.json (object or text) and its weight files: `weightFiles` maps each path
 * of the manifest (as written there, e.g. "group1-shard1of1.bin") to the file's bytes. The groups' files
 * are concatenated in manifest order, each group's size checked against its weight specs, so the result's
 * weightSpecs and weightData line up; `fromTfjs` takes it from there.
 *
 * @example
 * const json = JSON.parse(readFileSync("model/model.json", "utf8"));
 * const artifacts = tfjsArtifactsFromModelJSON(json, (p) => readFileSync(`model/${p}`));
 * const model = fromTfjs(artifacts);
 */
export function tfjsArtifactsFromModelJSON(
  json: TfjsModelJSON | object | string,
  weightFiles: Map<string, Uint8Array | ArrayBuffer> | ((path: string) => Uint8Array | ArrayBuffer),
): TfjsArtifactsInput {
  if (!(weightFiles instanceof Map) && typeof weightFiles !== "function") {
    throw new ValueError(`tfjsArtifactsFromModelJSON weightFiles: expected a Map from path to bytes or a function (path) => bytes, got ${fmtValue(weightFiles)}`);
  }
  let j: unknown = json;
  if (typeof j === "string") {
    try {
      j = JSON.parse(j);
    } catch (e) {
      bad(`not valid JSON (${(e as Error).message})`);
    }
  }
  if (!isObject(j)) bad(`expected an object { modelTopology, weightsManifest }, got ${fmtValue(j)}`);
  if (!isObject(j["modelTopology"])) bad(`modelTopology: expected an object, got ${fmtValue(j["modelTopology"])}`);
  const manifest = j["weightsManifest"];
  if (!Array.isArray(manifest)) bad(`weightsManifest: expected an array of { paths, weights }, got ${fmtValue(manifest)}`);
  // Check the whole manifest before asking for any file.
  const groups = (manifest as unknown[]).map((g, gi) => {
    const at = `weightsManifest[${gi}]`;
    if (!isObject(g)) bad(`${at}: expected { paths, weights }, got ${fmtValue(g)}`);
    const paths = g["paths"], weights = g["weights"];
    if (!Array.isArray(paths) || paths.length === 0) bad(`${at}.paths: expected a non-empty array of file names, got ${fmtValue(paths)}`);
    (paths as unknown[]).forEach((p, k) => checkWeightsPath((m) => new FormatError(`${JSON_SRC}: ${at}.paths[${k}]: ${m}`), p));
    if (!Array.isArray(weights)) bad(`${at}.weights: expected an array of weight specs, got ${fmtValue(weights)}`);
    return { at, paths: paths as string[], weights: weights as unknown[] };
  });
  const parts: Uint8Array[] = [];
  const specs: TfjsWeightSpec[] = [];
  for (const g of groups) {
    let groupBytes = 0;
    const files = g.paths.map((p, k) => {
      let f: unknown;
      try {
        f = weightFiles instanceof Map ? weightFiles.get(p) : weightFiles(p);
      } catch (e) {
        bad(`${g.at}.paths[${k}] ${JSON.stringify(p)}: cannot be read (${(e as Error)?.message ?? String(e)})`);
      }
      if (f === undefined) bad(`${g.at}.paths[${k}] ${JSON.stringify(p)}: no such weight file`);
      const u = f instanceof ArrayBuffer ? new Uint8Array(f) : f instanceof Uint8Array ? f : bad(`${g.at}.paths[${k}] ${JSON.stringify(p)}: expected the file's bytes (Uint8Array), got ${fmtValue(f)}`);
      groupBytes += u.byteLength;
      return u;
    });
    // The group's specs must describe exactly its files' bytes (parseSpecs checks fields and sizes).
    parseSpecs(JSON_SRC, `${g.at}.weights`, g.weights, groupBytes, `the files of ${g.at}.paths`);
    parts.push(...files);
    specs.push(...(g.weights as TfjsWeightSpec[]));
  }
  const total = parts.reduce((s, p) => s + p.byteLength, 0);
  const data = new Uint8Array(total); // the sum of files that already exist
  let off = 0;
  for (const p of parts) {
    data.set(p, off);
    off += p.byteLength;
  }
  const out: TfjsArtifactsInput = { modelTopology: j["modelTopology"], weightSpecs: specs, weightData: data.buffer };
  if (typeof j["format"] === "string") out.format = j["format"];
  if (typeof j["generatedBy"] === "string") out.generatedBy = j["generatedBy"];
  if (typeof j["convertedBy"] === "string" || j["convertedBy"] === null) out.convertedBy = j["convertedBy"] as string | null;
  return out;
}
