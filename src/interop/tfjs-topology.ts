/**
 * The TensorFlow.js Layers format, import of the topology: the Keras JSON config of a Sequential model (as
 * tfjs saves it, or tensorflowjs_converter writes it from Keras 2 or Keras 3) read into layer plans, one per
 * Embedding, LSTM, GRU, Bidirectional or Dense layer in order, each with the names its weights may carry and its
 * weight slots, which tfjs-weights.ts then fills from the weight specs. Whatever the engine does not compute is refused by
 * name. Also the import side's shared pieces (SRC, fail, isObject), for tfjs-weights.ts and tfjs.ts.
 *
 * The topology is untrusted like the rest: every field is checked, and a bad one fails with FormatError
 * naming it; nothing here is sized by the file beyond the layer objects themselves.
 */
import type { Layer } from "../engine.js";
import { LSTM, type RecurrentActivation } from "../layers/lstm.js";
import { GRU } from "../layers/gru.js";
import { Dense, type Activation } from "../layers/dense.js";
import { Masking } from "../layers/masking.js";
import { Embedding } from "../layers/embedding.js";
import { Bidirectional, MERGE_MODES, type MergeMode } from "../layers/bidirectional.js";
import { FormatError, fmtValue } from "../errors.js";
import { EMBEDDING_SLOTS, denseSlots, recurrentSlots } from "./tfjs-export.js";

export const SRC = "tfjs artifacts";

export function fail(msg: string): never {
  throw new FormatError(`${SRC}: ${msg}`);
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && !(v instanceof ArrayBuffer);
}

/** A layer of the topology as longshort will build it, with the names its weights may carry. */
export interface LayerPlan {
  layer: Layer;
  /** Where it is in the topology, for messages: `layers[2] (LSTM "lstm_1")`. */
  where: string;
  /** The layer's name and, for TimeDistributed, the wrapped layer's name too. */
  names: string[];
  /** Keras's weight names in getWeights order (and in the order of Keras 3's numbered variables). */
  slots: string[];
  /**
   * A Bidirectional's: the path segments that name its forward direction and its backward one in its weights' names
   * (tfjs and Keras 2: "forward_lstm", "backward_lstm"; Keras 3's variables: "forward_layer", "backward_layer"); its
   * slots are then "forward/kernel", …, "backward/…", each direction's weights in its own slot order.
   */
  directions?: [Set<string>, Set<string>];
}

interface Topology {
  plans: LayerPlan[];
  /** Features per step: the last entry of the input shape, or 1 for ids (an Embedding first). */
  inputDim: number;
  /** Keras's Masking layer first, or null. */
  masking: Masking | null;
}

function isRecurrent(l: Layer): l is LSTM | GRU | Bidirectional {
  return l instanceof LSTM || l instanceof GRU || l instanceof Bidirectional;
}

/** Reads an optional boolean field, FormatError if it is anything else. */
function boolField(where: string, cfg: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = cfg[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") fail(`${where}: config.${key}: expected true or false, got ${fmtValue(v)}`);
  return v;
}

/** A positive integer field (units, input_dim, output_dim). */
function unitsField(where: string, cfg: Record<string, unknown>, key = "units"): number {
  const v = cfg[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) fail(`${where}: config.${key}: expected a positive integer, got ${fmtValue(v)}`);
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

/** What an LSTM's and a GRU's configs share, read and checked the same way; `cls` names the layer class in messages. */
function recurrentOptions(cls: "LSTM" | "GRU", where: string, cfg: Record<string, unknown>, keras3: boolean, batchSize: number | undefined) {
  const units = unitsField(where, cfg);
  const act = activationName(where, "activation", cfg["activation"]) ?? "tanh"; // Keras's default
  if (act !== "tanh") fail(`${where}: config.activation ${JSON.stringify(act)} is not supported; longshort's ${cls} computes "tanh"`);
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
  for (const key of ["return_state", "time_major"]) {
    if (boolField(where, cfg, key, false)) fail(`${where}: config.${key} true is not supported`);
  }
  const dropout = dropoutRate(where, cfg, "dropout"), recurrentDropout = dropoutRate(where, cfg, "recurrent_dropout");
  boolField(where, cfg, "unroll", false); // a speed setting: same results either way
  const stateful = boolField(where, cfg, "stateful", false);
  return {
    units,
    returnSequences: boolField(where, cfg, "return_sequences", false),
    stateful,
    batchSize: stateful ? batchSize : undefined,
    recurrentActivation,
    useBias: boolField(where, cfg, "use_bias", true),
    dropout,
    recurrentDropout,
    goBackwards: boolField(where, cfg, "go_backwards", false),
    zeroOutputForMask: boolField(where, cfg, "zero_output_for_mask", false),
  };
}

/** What a Bidirectional decides for the layer it wraps, over the layer's own config. */
type Forced = { zeroOutputForMask?: boolean };

function parseLSTM(where: string, cfg: Record<string, unknown>, keras3: boolean, batchSize: number | undefined, forced: Forced = {}): LayerPlan {
  const options = { ...recurrentOptions("LSTM", where, cfg, keras3, batchSize), ...forced };
  const layer = new LSTM({ ...options, unitForgetBias: boolField(where, cfg, "unit_forget_bias", true) });
  return { layer, where, names: [], slots: recurrentSlots(options.useBias) };
}

/**
 * Keras's GRU: gates z, r, h in the kernels' columns, as longshort's. reset_after true (Keras 3's and tf.keras 2's
 * default; tfjs cannot run it) has a bias [2, 3H] (input and recurrent rows), false or absent (what tfjs writes, the only
 * form it has) a bias [3H]; the weights' shapes are checked against the form the config names. What only speed or
 * training randomness reads is ignored: `implementation`, Keras 3's `seed` and `use_cudnn`.
 */
function parseGRU(where: string, cfg: Record<string, unknown>, keras3: boolean, batchSize: number | undefined, forced: Forced = {}): LayerPlan {
  const options = { ...recurrentOptions("GRU", where, cfg, keras3, batchSize), ...forced };
  const layer = new GRU({ ...options, resetAfter: boolField(where, cfg, "reset_after", false) });
  return { layer, where, names: [], slots: recurrentSlots(options.useBias) };
}

/** A Keras layer object { class_name, config } nested in a wrapper's config (`key`), checked. */
function nestedLayer(where: string, cfg: Record<string, unknown>, key: string): { cls: unknown; cfg: Record<string, unknown>; name: string | undefined } {
  const l = cfg[key];
  if (!isObject(l) || !isObject(l["config"])) fail(`${where}: config.${key}: expected a layer { class_name, config }, got ${fmtValue(l)}`);
  const name = l["config"]["name"];
  return { cls: l["class_name"], cfg: l["config"], name: typeof name === "string" && name !== "" ? name : undefined };
}

/** The settings of a backward direction that decide what it computes or how it trains, by their Keras names. */
const MIRRORED: [string, (l: LSTM | GRU) => unknown][] = [
  ["class_name", (l) => (l instanceof LSTM ? "LSTM" : "GRU")], ["units", (l) => l.units],
  ["recurrent_activation", (l) => l.recurrentActivation], ["use_bias", (l) => l.useBias],
  ["reset_after", (l) => (l instanceof GRU ? l.resetAfter : undefined)], ["go_backwards", (l) => l.goBackwards],
  ["return_sequences", (l) => l.returnSequences], ["stateful", (l) => l.stateful],
  ["dropout", (l) => l.dropout], ["recurrent_dropout", (l) => l.recurrentDropout],
];

/**
 * Keras's Bidirectional (tfjs-layers' is the same wrapper): config.layer the LSTM or GRU it wraps (its forward
 * direction), merge_mode "concat" (the default), "sum", "mul" or "ave"; the backward direction is that layer with
 * go_backwards true, which is what longshort's Bidirectional builds. Refused by name: merge_mode null (Keras's None:
 * the two outputs as a list), a wrapped layer with go_backwards true (tfjs and tf.keras 2 then read the "forward"
 * direction backwards; Keras 3 refuses it, and so does longshort's Bidirectional), and a backward_layer (Keras 3 writes
 * it always, tf.keras 2 when one was given) that differs from the mirrored copy in anything it computes or trains
 * with. Each direction's zero_output_for_mask is its return_sequences, as Keras's wrapper (tf.keras 2 and Keras 3)
 * forces it and longshort's does; tfjs's differs (parseTopology).
 */
function parseBidirectional(where: string, cfg: Record<string, unknown>, keras3: boolean, batchSize: number | undefined): LayerPlan {
  const mode = cfg["merge_mode"];
  if (mode === null) {
    fail(`${where}: config.merge_mode null (Keras's None: the two directions' outputs as a list) is not supported; a Sequential passes one ` +
      `output on, so longshort's Bidirectional merges them ("concat", "sum", "mul" or "ave")`);
  }
  if (mode !== undefined && (typeof mode !== "string" || !MERGE_MODES.includes(mode as MergeMode))) {
    fail(`${where}: config.merge_mode: expected "concat", "sum", "mul" or "ave", got ${fmtValue(mode)}`);
  }
  const nc = cfg["num_constants"];
  if (nc !== undefined && nc !== null && nc !== 0) fail(`${where}: config.num_constants ${fmtValue(nc)}: constants passed to the wrapped cell are not supported`);
  const inner = nestedLayer(where, cfg, "layer");
  if (inner.cls !== "LSTM" && inner.cls !== "GRU") {
    fail(`${where}: config.layer: only a wrapped LSTM or GRU is supported, got ${typeof inner.cls === "string" ? JSON.stringify(inner.cls) : fmtValue(inner.cls)}`);
  }
  const parse = inner.cls === "LSTM" ? parseLSTM : parseGRU;
  const forced: Forced = { zeroOutputForMask: boolField(`${where} layer`, inner.cfg, "return_sequences", false) };
  const forward = parse(`${where} layer`, inner.cfg, keras3, batchSize, forced).layer as LSTM | GRU;
  if (forward.goBackwards) {
    fail(`${where} layer: config.go_backwards true is not supported in a Bidirectional: its forward direction would read backwards and ` +
      `its backward one forwards (tfjs and tf.keras 2 flip it); longshort's Bidirectional, as Keras 3's, wraps a layer that reads forwards`);
  }
  const layer = new Bidirectional(forward, { mergeMode: (mode ?? "concat") as MergeMode });
  let backName: string | undefined;
  if (cfg["backward_layer"] !== undefined && cfg["backward_layer"] !== null) {
    const back = nestedLayer(where, cfg, "backward_layer");
    backName = back.name;
    const bw = back.cls === "LSTM" || back.cls === "GRU" ? (back.cls === "LSTM" ? parseLSTM : parseGRU)(`${where} backward_layer`, back.cfg, keras3, batchSize, forced).layer as LSTM | GRU : null;
    for (const [key, get] of MIRRORED) {
      const theirs = bw ? get(bw) : back.cls, ours = get(layer.backwardLayer);
      if (theirs !== ours) {
        fail(`${where}: config.backward_layer has ${key} ${fmtValue(theirs)} where the mirrored copy of config.layer (go_backwards true, the ` +
          `backward direction longshort's Bidirectional builds) has ${fmtValue(ours)}; a custom backward layer is not supported`);
      }
    }
  }
  // The path segments of each direction's weights: tfjs's and tf.keras 2's "forward_" + the layer's name (Keras 3 has
  // that prefix in the name already), Keras 3's attribute names forward_layer / backward_layer; a segment both could
  // name is left out.
  const n = inner.name, base = n?.replace(/^forward_/, "");
  const fw = new Set(["forward_layer", ...(n === undefined ? [] : [n, `forward_${n}`])]);
  const bw = new Set(["backward_layer", ...(base === undefined ? [] : [`backward_${base}`]), ...(backName === undefined ? [] : [backName, `backward_${backName}`])]);
  for (const t of [...fw]) if (bw.has(t)) { fw.delete(t); bw.delete(t); }
  const slots = recurrentSlots(forward.useBias);
  return { layer, where, names: [], slots: [...slots.map((s) => `forward/${s}`), ...slots.map((s) => `backward/${s}`)], directions: [fw, bw] };
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

/**
 * A Keras batch shape [batch, timesteps, features] → its batch size (or undefined), timesteps (or undefined) and
 * features; for ids (an Embedding first) [batch, timesteps], one id per step (features 1).
 */
function parseBatchShape(where: string, v: unknown, ids: boolean): { batch: number | undefined; timesteps: number | undefined; features: number } {
  const want = ids ? "[batch, timesteps] (an Embedding reads one id per step)" : "[batch, timesteps, features]";
  if (!Array.isArray(v)) fail(`${where}: expected a batch shape ${want}, got ${fmtValue(v)}`);
  if (v.length !== (ids ? 2 : 3)) {
    fail(ids
      ? `${where}: expected a batch shape ${want}, got ${v.length} entries (on more, tfjs's Embedding gives a vector per entry, which no LSTM reads)`
      : `${where}: expected a batch shape ${want} (3 entries; the LSTM needs a feature dimension), got ${v.length} entries`);
  }
  const dim = (d: unknown, what: string, nullable: boolean): number | undefined => {
    if ((d === null || d === undefined) && nullable) return undefined;
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d <= 0) {
      fail(`${where}: ${what}: expected ${nullable ? "null or " : ""}a positive integer, got ${fmtValue(d)}`);
    }
    return d;
  };
  const batch = dim(v[0], "batch size", true);
  const timesteps = dim(v[1], "timesteps", true);
  return { batch, timesteps, features: ids ? 1 : dim(v[2], "features", false)! };
}

/**
 * Keras's Embedding, first: input_dim V, output_dim D, mask_zero, and its weight `embeddings` (V, D). What only
 * training reads is ignored, since it leaves what the layer computes unchanged: embeddings_initializer (the file
 * holds the table), embeddings_regularizer and activity_regularizer (terms of the training loss), embeddings_constraint
 * (a projection after each update; the stored table is already its result) and Keras 3's `sparse` (the gradient's
 * form); none is applied if the model trains here. input_length (Keras 2, tfjs: a fixed sequence length; longshort
 * takes any) must agree with the input shape.
 */
function parseEmbedding(where: string, cfg: Record<string, unknown>, timesteps: number | undefined): LayerPlan {
  const inputDim = unitsField(where, cfg, "input_dim");
  const outputDim = unitsField(where, cfg, "output_dim");
  const maskZero = boolField(where, cfg, "mask_zero", false);
  let len = cfg["input_length"];
  if (Array.isArray(len) && len.length === 1) len = len[0]; // tfjs allows [T]
  if (len !== undefined && len !== null) {
    if (typeof len !== "number" || !Number.isSafeInteger(len) || len <= 0) {
      fail(`${where}: config.input_length: expected null or a positive integer (the ids are [batch, timesteps]), got ${fmtValue(len)}`);
    }
    if (timesteps !== undefined && len !== timesteps) fail(`${where}: config.input_length ${len} disagrees with the input shape's ${timesteps} timesteps`);
  }
  // Keras 3's LoRA: two more weights whose product is added to the table.
  const lora = cfg["lora_rank"];
  if (lora !== undefined && lora !== null) fail(`${where}: config.lora_rank ${fmtValue(lora)}: a LoRA-adapted Embedding is not supported (merge the adapter into the table first)`);
  return { layer: new Embedding({ inputDim, outputDim, maskZero }), where, names: [], slots: EMBEDDING_SLOTS.slice() };
}

/** Whether TensorFlow.js wrote the topology (its keras_version is "tfjs-layers …", as toTfjs's is). */
function writtenByTfjs(top: Record<string, unknown>, generatedBy: unknown): boolean {
  const kv = top["keras_version"];
  if (typeof kv === "string") return kv.startsWith("tfjs-layers");
  return typeof generatedBy === "string" && generatedBy.startsWith("TensorFlow.js");
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
export function parseTopology(topology: unknown, generatedBy: unknown): Topology {
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
  const tfjs = writtenByTfjs(top, generatedBy);

  // The input shape: an InputLayer first, or the first layer's batch_input_shape (Keras 3: batch_shape),
  // or (Keras 3 without an Input) the Sequential's build_input_shape or the first layer's build_config.
  let shape: { batch: number | undefined; timesteps: number | undefined; features: number } | undefined;
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
  if (first.cls === "InputLayer") start = 1;
  // An Embedding first reads ids [batch, timesteps]: the input shape has no feature entry.
  const ids = start < layers.length && layerAt(start).cls === "Embedding";
  if (first.cls === "InputLayer") {
    const key = first.cfg["batch_input_shape"] !== undefined ? "batch_input_shape" : "batch_shape";
    shape = parseBatchShape(`${first.where}: config.${key}`, first.cfg[key], ids);
  }
  const plans: LayerPlan[] = [];
  let masking: Masking | null = null;
  // Whether the layers so far give a sequence: every LSTM or GRU among them returns sequences (a Dense keeps its input's flow).
  const sequenceBelow = (): boolean => plans.every((p) => !isRecurrent(p.layer) || p.layer.returnSequences);
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
        if (key !== null) shape = parseBatchShape(`${where}: config.${key}`, cfg[key], false);
      }
      start = i + 1;
      continue;
    }
    if (c === "Embedding") {
      // Before the input shape is read: an Embedding's is ids, which only a first one reads.
      if (masking) fail(`${where}: an Embedding after a Masking layer is not supported (the Embedding reads the ids; its mask_zero makes id 0 padding)`);
      if (i !== start) fail(`${where}: an Embedding is only supported as the first layer (after an InputLayer): it reads the model's ids`);
    }
    if (shape === undefined && i === start) {
      const key = cfg["batch_input_shape"] !== undefined ? "batch_input_shape" : cfg["batch_shape"] !== undefined ? "batch_shape" : null;
      const buildCfg = cfg["build_config"];
      if (key !== null) shape = parseBatchShape(`${where}: config.${key}`, cfg[key], ids);
      else if (buildInputShape !== undefined && buildInputShape !== null) shape = parseBatchShape(`modelTopology.config.build_input_shape`, buildInputShape, ids);
      else if (isObject(buildCfg) && buildCfg["input_shape"] !== undefined) shape = parseBatchShape(`${where}: build_config.input_shape`, buildCfg["input_shape"], ids);
      else fail(`${where}: no input shape (expected config.batch_input_shape on the first layer, or an InputLayer first)`);
    }
    let plan: LayerPlan;
    const layerName = cfg["name"];
    if (typeof layerName !== "string" || layerName === "") fail(`${where}: config.name: expected a non-empty string, got ${fmtValue(layerName)}`);
    if (c === "Embedding") {
      plan = parseEmbedding(where, cfg, shape!.timesteps);
      plan.names.push(layerName);
    } else if (c === "LSTM" || c === "GRU") {
      plan = (c === "LSTM" ? parseLSTM : parseGRU)(where, cfg, keras3, shape!.batch);
      plan.names.push(layerName);
    } else if (c === "Bidirectional") {
      plan = parseBidirectional(where, cfg, keras3, shape!.batch);
      plan.names.push(layerName);
    } else if (c === "Dense" || c === "TimeDistributed") {
      if (c === "Dense") {
        plan = parseDense(where, cfg);
        plan.names.push(layerName);
      } else {
        const inner = cfg["layer"];
        if (!isObject(inner) || inner["class_name"] !== "Dense" || !isObject(inner["config"])) {
          const ic = isObject(inner) ? inner["class_name"] : inner;
          fail(`${where}: config.layer: only a wrapped Dense is supported, got ${typeof ic === "string" ? JSON.stringify(ic) : fmtValue(ic)}`);
        }
        if (!sequenceBelow()) {
          fail(`${where}: TimeDistributed needs a sequence input (the LSTM or GRU below must have return_sequences true)`);
        }
        plan = parseDense(`${where} layer`, inner["config"]);
        plan.names.push(layerName);
        const innerName = inner["config"]["name"];
        if (typeof innerName === "string" && innerName !== "") plan.names.push(innerName);
      }
    } else if (c === "InputLayer") {
      fail(`${where}: an InputLayer is only supported as the first layer`);
    } else {
      fail(`${where}: layer class ${JSON.stringify(c)} is not supported; longshort imports Embedding, Masking, LSTM, GRU and Dense (or TimeDistributed Dense) layers, and Bidirectional LSTMs and GRUs`);
    }
    if (isRecurrent(plan.layer) && !sequenceBelow()) {
      const last = plans.filter((p) => isRecurrent(p.layer) && !p.layer.returnSequences).pop()!;
      const below = last.layer.kind === "gru" ? "a GRU" : last.layer.kind === "lstm" ? "an LSTM" : "a Bidirectional";
      fail(`${where}: ${below} below it has return_sequences false, so this ${c} would get no sequence`);
    }
    plans.push(plan);
  }
  if (plans.length === 0) fail(`modelTopology.config.layers: no Embedding, LSTM, GRU or Dense layer after the InputLayer`);
  // tfjs's RNN has no zero_output_for_mask (a masked step repeats the previous output), where a sequence-returning
  // Bidirectional gives zeros (Keras's wrapper forces it, and longshort's): on the top recurrent layer of a masked
  // model those steps reach the output. Below the top they do not (the layer above reads none of them).
  const topPlan = plans.filter((p) => isRecurrent(p.layer)).pop();
  const masked = masking !== null || plans.some((p) => p.layer instanceof Embedding && p.layer.maskZero);
  if (tfjs && masked && topPlan?.layer instanceof Bidirectional && topPlan.layer.returnSequences) {
    fail(`${topPlan.where}: a Bidirectional returning sequences, the top recurrent layer of a masked model written by TensorFlow.js: tfjs's ` +
      `RNN repeats the previous output at a masked step, where longshort's Bidirectional (as Keras's) gives zeros, so this model would not ` +
      `predict here what it predicts in tfjs`);
  }
  if (!plans.some((p) => isRecurrent(p.layer))) fail(`modelTopology.config.layers: no LSTM, GRU or Bidirectional layer (a longshort model has at least one recurrent layer)`);
  const seen = new Map<string, string>();
  for (const p of plans) {
    for (const n of p.names) {
      if (seen.has(n) && seen.get(n) !== p.where) fail(`${p.where}: the layer name ${JSON.stringify(n)} is also used by ${seen.get(n)}`);
      seen.set(n, p.where);
    }
  }
  return { plans, inputDim: shape!.features, masking };
}
