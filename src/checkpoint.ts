/**
 * Checkpoints: everything needed to resume training bit for bit, as JSON (checkpoint-json.ts) or bytes.
 *
 * A checkpoint holds the model's configuration (every layer option, dtype, seed, compile settings), its
 * weights, the optimizer's state (Adam's and AdamW's m, v, iterations; SGD's velocity; RMSprop's velocity,
 * momentum and average gradient; a learning-rate schedule's settings, evaluated at the saved step count), the positions of the RNGs behind shuffling and dropout, the LSTM states with the fixed
 * batch size of a stateful model, and the position of the RNG behind `fit`'s shuffling. Arrays are stored
 * losslessly as base64 of their raw little-endian bytes (float32 weights as 4 bytes, float64 as 8), never
 * as decimal text, so a round trip is exact for every value, -0, subnormals and all.
 *
 * File layout (format version 1):
 *
 *     {"format":"longshort-checkpoint","version":1,"bytes":N,"sha256":"<hex>"}\n   ← header line
 *     <N bytes: the payload, UTF-8 JSON of CheckpointJSON>
 *
 * The header's byte count catches truncation and the SHA-256 of the payload catches corruption; a file
 * from a newer format version is refused by name.
 *
 * Everything here is bytes and JSON, so it runs wherever the core runs (a page can keep checkpoints in
 * IndexedDB or send them over the network). Files, written atomically, are longshort/node's
 * (node/checkpoint-files.ts).
 */
import { Sequential, type RunOptions, checkRunOptions } from "./model.js";
import type { Layer } from "./engine.js";
import { LSTM, RECURRENT_ACTIVATIONS, type RecurrentActivation } from "./layers/lstm.js";
import { GRU } from "./layers/gru.js";
import { Bidirectional, MERGE_MODES } from "./layers/bidirectional.js";
import { Dense, ACTIVATIONS } from "./layers/dense.js";
import { Embedding, EMBEDDING_INITIALIZERS } from "./layers/embedding.js";
import { Masking } from "./layers/masking.js";
import { expectedShapes } from "./interop/build.js";
import { weightNamesOf } from "./layers/layer.js";
import { OPTIMIZER_NAMES, makeOptimizer } from "./optimizers-extra.js";
import { type Schedule, SCHEDULE_FIELDS, SCHEDULE_NAMES, makeSchedule } from "./schedules.js";
import { LOSSES, METRICS, checkHuberDelta } from "./losses.js";
import { Rng, INITIALIZERS } from "./init.js";
import { type DType, type FloatArray, allocate } from "./tensor/tensor.js";
import { CheckpointError, LongshortError, ValueError, checkKeys, fmtShape, fmtValue, fmtInstance } from "./errors.js";
import { base64Decode, sha256Hex, utf8Decode, utf8Encode } from "./bytes.js";
import {
  type CheckpointJSON, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, LITTLE_ENDIAN, engineToJSON,
} from "./checkpoint-json.js";

export { CHECKPOINT_VERSION, type CheckpointJSON };

/**
 * The model as a plain JSON object (what `model.toJSON()` returns, so `JSON.stringify(model)` works too).
 *
 * @example
 * const json = checkpointToJSON(model);
 * const copy = checkpointFromJSON(JSON.parse(JSON.stringify(json)));   // the same model, bit for bit
 */
export function checkpointToJSON(model: Sequential): CheckpointJSON {
  if (!(model instanceof Sequential)) {
    throw new ValueError(`checkpointToJSON model: expected a Sequential, got ${fmtInstance(model, "Sequential")}`);
  }
  return engineToJSON(model.engine);
}


// -----------------------------------------------------------------------------------------------
// JSON → model, validating every piece

/** Reads a checkpoint object, throwing CheckpointError (or `Err`) with the path of the bad field. */
class Reader {
  constructor(private readonly source: string, private readonly Err: new (message: string) => LongshortError = CheckpointError) {}

  fail(path: string, msg: string, cause?: unknown): never {
    const e = new this.Err(`${this.source}: ${path}: ${msg}`);
    if (cause !== undefined) (e as { cause?: unknown }).cause = cause;
    throw e;
  }

  obj(path: string, v: unknown): Record<string, unknown> {
    if (typeof v !== "object" || v === null || Array.isArray(v)) this.fail(path, `expected an object, got ${fmtValue(v)}`);
    return v as Record<string, unknown>;
  }

  arr(path: string, v: unknown): unknown[] {
    if (!Array.isArray(v)) this.fail(path, `expected an array, got ${fmtValue(v)}`);
    return Array.from(v); // holes (possible in memory, never in JSON) become undefined and fail their checks
  }

  int(path: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `expected an integer in [${min}, ${max}], got ${fmtValue(v)}`);
    }
    return v;
  }

  optInt(path: string, v: unknown, min: number): number | undefined {
    return v === null ? undefined : this.int(path, v, min);
  }

  str(path: string, v: unknown): string {
    if (typeof v !== "string") this.fail(path, `expected a string, got ${fmtValue(v)}`);
    return v;
  }

  oneOf<T extends string>(path: string, v: unknown, options: readonly T[]): T {
    if (!options.includes(v as T)) this.fail(path, `expected one of ${options.map((o) => JSON.stringify(o)).join(", ")}, got ${fmtValue(v)}`);
    return v as T;
  }

  /** Decodes an EncodedArray of the expected name, dtype and shape; every value must be finite. */
  array(path: string, v: unknown, name: string, dtype: DType, shape: readonly number[]): FloatArray {
    const o = this.obj(path, v);
    if (o.name !== name) this.fail(`${path}.name`, `expected ${JSON.stringify(name)}, got ${fmtValue(o.name)}`);
    if (o.dtype !== dtype) this.fail(`${path}.dtype`, `expected ${JSON.stringify(dtype)}, got ${fmtValue(o.dtype)}`);
    const s = this.arr(`${path}.shape`, o.shape);
    if (s.length !== shape.length || s.some((d, i) => d !== shape[i])) {
      this.fail(`${path}.shape`, `expected ${fmtShape(shape)}, got ${JSON.stringify(s)}`);
    }
    const data = this.str(`${path}.data`, o.data);
    const bytes = base64Decode(data);
    if (!bytes) return this.fail(`${path}.data`, `not valid base64`);
    const n = shape.reduce((a, b) => a * b, 1), width = dtype === "float32" ? 4 : 8;
    if (bytes.length !== n * width) {
      this.fail(`${path}.data`, `expected ${n} ${dtype} values (${n * width} bytes), got ${bytes.length} bytes`);
    }
    const out = allocate(dtype, n);
    if (LITTLE_ENDIAN) {
      new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes);
    } else {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let k = 0; k < n; k++) out[k] = width === 4 ? dv.getFloat32(4 * k, true) : dv.getFloat64(8 * k, true);
    }
    for (let k = 0; k < n; k++) {
      const x = out[k]!;
      if (x - x !== 0) this.fail(`${path}.data`, `non-finite value ${x} at flat index ${k}`);
    }
    return out;
  }

  /** Runs a library constructor, turning its validation error into a CheckpointError at `path`. */
  build<T>(path: string, make: () => T): T {
    try {
      return make();
    } catch (e) {
      if (e instanceof LongshortError && !(e instanceof this.Err)) this.fail(path, (e as Error).message, e);
      throw e;
    }
  }
}

/**
 * One layer's configuration. The layer is made without its input size, which is returned beside it: the
 * model is built only once the weights in the file have been checked against the sizes it asks for.
 */
function readLayer(r: Reader, path: string, v: unknown, version: number, inside = false): { layer: Layer; inputDim: number | undefined } {
  const o = r.obj(path, v);
  const kinds = inside ? ["lstm", "gru"] as const : version >= 3 ? ["lstm", "gru", "bidirectional", "dense", "embedding"] as const : ["lstm", "dense"] as const;
  const kind = r.oneOf(`${path}.kind`, o.kind, kinds);
  if (kind === "bidirectional") {
    for (const k of Object.keys(o)) if (!["kind", "mergeMode", "layer"].includes(k)) r.fail(`${path}.${k}`, `unknown field`);
    const mergeMode = r.oneOf(`${path}.mergeMode`, o.mergeMode, MERGE_MODES);
    const inner = readLayer(r, `${path}.layer`, o.layer, version, true);
    return { layer: r.build(path, () => new Bidirectional(inner.layer as LSTM | GRU, { mergeMode })), inputDim: inner.inputDim };
  }
  if (kind === "embedding") {
    for (const k of Object.keys(o)) if (!["kind", "inputDim", "outputDim", "maskZero", "embeddingsInitializer"].includes(k)) r.fail(`${path}.${k}`, `unknown field`);
    if (typeof o.maskZero !== "boolean") r.fail(`${path}.maskZero`, `expected true or false, got ${fmtValue(o.maskZero)}`);
    const options = {
      inputDim: r.int(`${path}.inputDim`, o.inputDim, 1), outputDim: r.int(`${path}.outputDim`, o.outputDim, 1),
      maskZero: o.maskZero as boolean, embeddingsInitializer: r.oneOf(`${path}.embeddingsInitializer`, o.embeddingsInitializer, EMBEDDING_INITIALIZERS),
    };
    return { layer: r.build(path, () => new Embedding(options)), inputDim: 1 }; // the model's input: one id per step
  }
  const inputDim = r.optInt(`${path}.inputDim`, o.inputDim, 1);
  // Every field is required (each version always writes its fields): a missing one must not fall back to a
  // default. The fields version 2 added must be absent from a version-1 file, which means their defaults.
  const v2 = (name: string, ok: readonly unknown[], dflt: unknown): unknown => {
    if (version >= 2) {
      if (!ok.includes(o[name])) r.fail(`${path}.${name}`, `expected one of ${ok.map((x) => JSON.stringify(x)).join(", ")}, got ${fmtValue(o[name])}`);
      return o[name];
    }
    if (name in o) r.fail(`${path}.${name}`, `a version-1 checkpoint has no ${name} (it came with version 2)`);
    return dflt;
  };
  // The fields version 3 added (the LSTM's goBackwards and zeroOutputForMask): absent before it, meaning false.
  const v3 = (name: string): boolean => {
    if (version >= 3) {
      if (typeof o[name] !== "boolean") r.fail(`${path}.${name}`, `expected true or false, got ${fmtValue(o[name])}`);
      return o[name] as boolean;
    }
    if (name in o) r.fail(`${path}.${name}`, `a version-${version} checkpoint has no ${name} (it came with version 3)`);
    return false;
  };
  const v2rate = (name: string): number => {
    if (version < 2) return v2(name, [], 0) as number;
    const v = o[name];
    if (typeof v !== "number" || !(v >= 0 && v < 1)) r.fail(`${path}.${name}`, `expected a rate in [0, 1), got ${fmtValue(v)}`);
    return v as number;
  };
  if (kind === "lstm" || kind === "gru") {
    // A GRU came with version 3, which writes every field: anything else in it is refused.
    const gruFields = ["kind", "units", "inputDim", "returnSequences", "stateful", "batchSize", "resetAfter", "kernelInitializer",
      "recurrentInitializer", "recurrentActivation", "useBias", "dropout", "recurrentDropout", "goBackwards", "zeroOutputForMask"];
    if (kind === "gru") for (const k of Object.keys(o)) if (!gruFields.includes(k)) r.fail(`${path}.${k}`, `unknown field`);
    const shared = {
      units: r.int(`${path}.units`, o.units, 1),
      returnSequences: o.returnSequences as boolean,
      stateful: o.stateful as boolean,
      batchSize: r.optInt(`${path}.batchSize`, o.batchSize, 1),
      kernelInitializer: r.oneOf(`${path}.kernelInitializer`, o.kernelInitializer, INITIALIZERS),
      recurrentInitializer: r.oneOf(`${path}.recurrentInitializer`, o.recurrentInitializer, INITIALIZERS),
      recurrentActivation: v2("recurrentActivation", RECURRENT_ACTIVATIONS, "sigmoid") as RecurrentActivation,
      useBias: v2("useBias", [true, false], true) as boolean,
      dropout: v2rate("dropout"),
      recurrentDropout: v2rate("recurrentDropout"),
      goBackwards: v3("goBackwards"),
      zeroOutputForMask: v3("zeroOutputForMask"),
    };
    const own = kind === "lstm" ? { unitForgetBias: o.unitForgetBias as boolean } : { resetAfter: o.resetAfter as boolean };
    const options = { ...shared, ...own };
    for (const [k, v] of Object.entries({ returnSequences: shared.returnSequences, stateful: shared.stateful, ...own })) {
      if (typeof v !== "boolean") r.fail(`${path}.${k}`, `expected true or false, got ${fmtValue(v)}`);
    }
    if (options.batchSize === undefined) delete options.batchSize;
    return { layer: r.build(path, () => (kind === "lstm" ? new LSTM(options) : new GRU(options))), inputDim };
  }
  const d = new Dense({
    units: r.int(`${path}.units`, o.units, 1), activation: r.oneOf(`${path}.activation`, o.activation, ACTIVATIONS),
    useBias: v2("useBias", [true, false], true) as boolean,
  });
  return { layer: d, inputDim };
}

/** The layers of a configuration (unbuilt) and the input size it states, checked to chain. */
function readLayers(r: Reader, path: string, v: unknown, version: number): { layers: Layer[]; inputDim: number | undefined } {
  const read = r.arr(path, v).map((l, i) => readLayer(r, `${path}[${i}]`, l, version));
  const layers = read.map((l) => l.layer);
  // The input sizes the configuration states must chain: layer k reads what layer k-1 gives.
  const inputDim = read[0]?.inputDim;
  read.forEach(({ inputDim: d }, i) => {
    const want = i === 0 ? inputDim : layers[i - 1]!.units;
    if (d !== want && !(i > 0 && d === undefined && inputDim === undefined)) {
      r.fail(`${path}[${i}].inputDim`, `expected ${want ?? null} (the output of the layer below), got ${d ?? null}`);
    }
  });
  return { layers, inputDim };
}

/**
 * @internal For importers that carry longshort's configuration (safetensors' `__metadata__`): the layers of a
 * checkpoint-format `config.layers` array of format `version`, unbuilt, and the input size it states. A bad
 * field throws `Err` naming `source` and the field's path.
 */
export function layersFromConfig(
  source: string, path: string, layers: unknown, version: number, Err: new (message: string) => LongshortError,
): { layers: Layer[]; inputDim: number | undefined } {
  const r = new Reader(source, Err);
  if (!Number.isInteger(version) || version < 1 || version > CHECKPOINT_VERSION) {
    r.fail(`${path} version`, `expected a format version from 1 to ${CHECKPOINT_VERSION}, got ${fmtValue(version)}`);
  }
  return readLayers(r, path, layers, version);
}

/**
 * A learning-rate schedule as the writer stores it, `{ schedule: name, config: {…} }`, with every field of the
 * schedule's config present (no default is assumed; CosineDecay's warmupTarget is null when none) and each one
 * validated as the schedule's constructor does.
 */
function readSchedule(r: Reader, path: string, v: unknown): Schedule {
  const o = r.obj(path, v);
  for (const k of Object.keys(o)) if (k !== "schedule" && k !== "config") r.fail(`${path}.${k}`, `unknown field (a schedule has "schedule" and "config")`);
  const name = r.oneOf(`${path}.schedule`, o.schedule, SCHEDULE_NAMES);
  const c = r.obj(`${path}.config`, o.config);
  for (const k of SCHEDULE_FIELDS[name]) if (!Object.hasOwn(c, k)) r.fail(`${path}.config.${k}`, `missing (every field of a ${name} is written)`);
  return r.build(`${path}.config`, () => makeSchedule(name, c));
}

/**
 * What the loaders take beside the bytes: where the model runs (`backend`, `fma`: see RunOptions; a checkpoint does
 * not hold them, so a model saved with fma on loads with it off unless asked) and `source`, which names the bytes
 * in error messages. A string in its place is the source alone.
 */
export interface LoadOptions extends RunOptions {
  source?: string;
}

/**
 * A loader's options (undefined, a source string or LoadOptions), checked before any byte is read: errors name
 * `what` ("decodeCheckpoint options.fma: …"), never the checkpoint.
 */
export function loadOptions(what: string, options: unknown, fallback: string): { source: string; run: Required<RunOptions> } {
  if (options === undefined) return { source: fallback, run: checkRunOptions(`${what} options.`) };
  if (typeof options === "string") return { source: options, run: checkRunOptions(`${what} options.`) };
  if (typeof options !== "object" || options === null) {
    throw new ValueError(`${what} options: expected { source?, backend?, fma? } or a source string, got ${fmtValue(options)}`);
  }
  checkKeys(what, options, ["source", "backend", "fma"]);
  const o = options as LoadOptions;
  if (o.source !== undefined && typeof o.source !== "string") throw new ValueError(`${what} options.source: expected a string, got ${fmtValue(o.source)}`);
  return { source: o.source ?? fallback, run: checkRunOptions(`${what} options.`, o.backend, o.fma) };
}

/** RunOptions given to a loader that takes no source (loadCheckpoint: the path is the source), checked. */
export function runOptions(what: string, options: unknown): Required<RunOptions> {
  if (options === undefined) return checkRunOptions(`${what} options.`);
  if (typeof options !== "object" || options === null) throw new ValueError(`${what} options: expected { backend?, fma? }, got ${fmtValue(options)}`);
  checkKeys(what, options, ["backend", "fma"]);
  const o = options as RunOptions;
  return checkRunOptions(`${what} options.`, o.backend, o.fma);
}

/**
 * Rebuilds a model from `checkpointToJSON`'s object (or `JSON.parse(JSON.stringify(model))`). Every field is
 * validated; a bad one throws CheckpointError naming it. `options`: see LoadOptions.
 *
 * @example
 * const model = checkpointFromJSON(JSON.parse(text));
 * const fused = checkpointFromJSON(JSON.parse(text), { fma: true });   // the same model, its products fused
 */
export function checkpointFromJSON(json: unknown, options?: string | LoadOptions): Sequential {
  const { source, run } = loadOptions("checkpointFromJSON", options, "checkpoint");
  return fromJSON(json, source, run);
}

function fromJSON(json: unknown, source: string, run: Required<RunOptions>): Sequential {
  const r = new Reader(source);
  const top = r.obj("checkpoint", json);
  if (top.format !== CHECKPOINT_FORMAT) {
    r.fail("format", `not a longshort checkpoint: expected ${JSON.stringify(CHECKPOINT_FORMAT)}, got ${fmtValue(top.format)}`);
  }
  const version = r.int("version", top.version, 1);
  if (version > CHECKPOINT_VERSION) {
    r.fail("version", `written by checkpoint format version ${version}, newer than this longshort reads (up to ${CHECKPOINT_VERSION}); upgrade longshort`);
  }
  const config = r.obj("config", top.config);
  const dtype = r.oneOf("config.dtype", config.dtype, ["float32", "float64"] as const);
  const seed = r.str("config.seed", config.seed);
  const { layers, inputDim } = readLayers(r, "config.layers", config.layers, version);
  const masking = readMasking(r, "config.masking", config.masking, version);
  // Not built yet: no inputDim given.
  const model = r.build("config", () => new Sequential(masking ? [masking, ...layers] : layers, { dtype, seed, ...run }));
  const e = model.engine;

  // Weights. The file must hold every weight the configuration asks for, at the size it asks for, before the
  // model allocates anything: a configuration cannot make the reader allocate more than the file holds, and
  // the weights are not initialised only to be overwritten.
  if (top.weights !== null) {
    const ws = r.arr("weights", top.weights);
    if (inputDim === undefined) r.fail("weights", `the model has weights but config.layers[0].inputDim is null`);
    const names = weightNamesOf(layers), shapes = expectedShapes(layers, inputDim!);
    if (ws.length !== shapes.length) r.fail("weights", `expected ${shapes.length} arrays (${names.join(", ")}), got ${ws.length}`);
    const decoded = shapes.map((shape, i) => {
      const name = (ws[i] as { name?: unknown } | null)?.name;
      if (name !== names[i]) r.fail(`weights[${i}].name`, `expected ${JSON.stringify(names[i])}, got ${fmtValue(name)}`);
      return r.array(`weights[${i}] (${names[i]})`, ws[i], names[i]!, dtype, shape);
    });
    r.build("config", () => e.build(inputDim!, false));
    let off = 0;
    for (const a of decoded) { e.params.set(a, off); off += a.length; }
  } else if (inputDim !== undefined) {
    r.fail("weights", `the configuration builds the model (config.layers[0].inputDim is set) but weights is null`);
  }

  // Compile settings and optimizer state.
  if (config.compile !== null) {
    const c = r.obj("config.compile", config.compile);
    const oc = r.obj("config.compile.optimizer", c.optimizer);
    const name = r.oneOf("config.compile.optimizer.name", oc.name, OPTIMIZER_NAMES);
    const ocfg = { ...r.obj("config.compile.optimizer.config", oc.config) };
    const lr = ocfg.learningRate;
    if (typeof lr === "object" && lr !== null) ocfg.learningRate = readSchedule(r, "config.compile.optimizer.config.learningRate", lr);
    const optimizer = r.build("config.compile.optimizer.config", () => makeOptimizer(name, ocfg));
    const loss = r.oneOf("config.compile.loss", c.loss, LOSSES);
    if (loss !== "huber" && c.huberDelta !== undefined) r.fail("config.compile.huberDelta", `only with loss "huber", got loss ${JSON.stringify(loss)}`);
    const lossOption = loss === "huber"
      ? { name: "huber" as const, delta: r.build("config.compile.huberDelta", () => checkHuberDelta("huberDelta", c.huberDelta)) }
      : loss;
    const metrics = r.arr("config.compile.metrics", c.metrics).map((v, i) => r.oneOf(`config.compile.metrics[${i}]`, v, METRICS));
    const onNonFinite = r.oneOf("config.compile.onNonFinite", c.onNonFinite, ["throw", "skip"] as const);
    r.build("config.compile", () => model.compile({ optimizer, loss: lossOption, metrics, onNonFinite }));
    const os = r.obj("optimizer", top.optimizer);
    optimizer.iterations = r.int("optimizer.iterations", os.iterations, 0);
    const slots = optimizer.slots();
    const saved = r.arr("optimizer.slots", os.slots);
    if (saved.length !== slots.length) r.fail("optimizer.slots", `expected ${slots.length} arrays for ${name}, got ${saved.length}`);
    const slotNames = optimizer.slotNames(); // RMSprop's depend on its options: momentum, centered
    slots.forEach((s, i) => s.set(r.array(`optimizer.slots[${i}]`, saved[i], slotNames[i]!, "float64", [s.length])));
  } else if (top.optimizer !== null) {
    r.fail("optimizer", `optimizer state without compile settings (config.compile is null)`);
  }

  // The fixed batch size and the LSTM states.
  const st = r.obj("states", top.states);
  const batchSize = r.optInt("states.batchSize", st.batchSize, 1);
  if (batchSize !== e.batchSize) {
    if (batchSize === undefined || !e.stateful) {
      r.fail("states.batchSize", `expected ${e.batchSize ?? null} (from the layers' configuration), got ${fmtValue(st.batchSize)}`);
    }
    e.fixBatch(batchSize!); // no state slots yet: they come from the file below, or lazily when a pass needs them
  }
  const sl = r.arr("states.layers", st.layers);
  if (sl.length !== e.rnns.length) r.fail("states.layers", `expected ${e.rnns.length} entries (one per recurrent layer), got ${sl.length}`);
  const states = e.rnns.map((l, i) => {
    if (sl[i] === null) return null;
    const p = `states.layers[${i}]`, o = r.obj(p, sl[i]);
    const rows = r.int(`${p}.h.shape[0]`, (o.h as { shape?: unknown[] } | null)?.shape?.[0], 0);
    if (l.stateful && batchSize !== undefined && rows !== batchSize) {
      r.fail(`${p}.h.shape[0]`, `a stateful layer carries one row per batch row: expected ${batchSize}, got ${rows}`);
    }
    return l.stateNames.map((nm) => r.array(`${p}.${nm}`, o[nm], `${l.kind}_${i}/${nm}`, dtype, [rows, l.stateUnits]));
  });
  if (!e.built && states.some((s) => s !== null)) r.fail("states.layers", `states for a model that is not built`);
  states.forEach((s, i) => { e.state[i] = s; });

  // The shuffling RNG's position.
  e.shuffleRng = new Rng(`${e.seed}/shuffle`, readArc4(r, "shuffleRng", top.shuffleRng));
  // The dropout RNG's position (a model with dropout writes it; without, none is expected).
  if (top.dropoutRng !== undefined) {
    if (!e.hasDropout) r.fail("dropoutRng", `a dropout RNG state for a model without dropout`);
    e.dropoutRng = new Rng(`${e.seed}/dropout`, readArc4(r, "dropoutRng", top.dropoutRng));
  } else if (e.hasDropout && version >= 2) r.fail("dropoutRng", `missing: a model with dropout must carry its dropout RNG's position`);
  return model;
}

/** A configuration's Masking layer (version 2: an object { maskValue } or null; absent means none). */
function readMasking(r: Reader, path: string, v: unknown, version: number): Masking | null {
  if (v === undefined || v === null) return null;
  if (version < 2) r.fail(path, `a version-1 checkpoint has no masking (it came with version 2)`);
  const o = r.obj(path, v);
  for (const k of Object.keys(o)) if (k !== "maskValue") r.fail(`${path}.${k}`, `unknown field`);
  if (!("maskValue" in o)) r.fail(`${path}.maskValue`, `missing: a checkpoint's Masking records its mask value`);
  return r.build(path, () => new Masking({ maskValue: o.maskValue as number }));
}

/** An RNG position: seedrandom's ARC4 state { i, j, S (a permutation of 0…255) }. */
function readArc4(r: Reader, path: string, v: unknown): { i: number; j: number; S: number[] } {
  const rng = r.obj(path, v);
  const S = r.arr(`${path}.S`, rng.S);
  if (S.length !== 256) r.fail(`${path}.S`, `expected 256 entries, got ${S.length}`);
  const seen = new Uint8Array(256);
  for (let k = 0; k < 256; k++) {
    const x = r.int(`${path}.S[${k}]`, S[k], 0, 255);
    if (seen[x]++) r.fail(`${path}.S[${k}]`, `${x} appears twice; the ARC4 state is a permutation of 0…255`);
  }
  return { i: r.int(`${path}.i`, rng.i, 0, 255), j: r.int(`${path}.j`, rng.j, 0, 255), S: S.slice() as number[] };
}

// -----------------------------------------------------------------------------------------------
// Bytes: header + payload

/**
 * The checkpoint file's bytes: a header line with the format version, payload size and SHA-256, then the
 * payload. Deterministic: the same model state always gives the same bytes.
 *
 * @example
 * const bytes = encodeCheckpoint(model);            // a Uint8Array, e.g. to store in IndexedDB or send
 * const same = decodeCheckpoint(bytes);
 */
export function encodeCheckpoint(model: Sequential): Uint8Array {
  const payload = utf8Encode(JSON.stringify(checkpointToJSON(model)));
  const header = utf8Encode(`${JSON.stringify({ format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, bytes: payload.length, sha256: sha256Hex(payload) })}\n`);
  const out = new Uint8Array(header.length + payload.length);
  out.set(header);
  out.set(payload, header.length);
  return out;
}

const MAGIC = `{"format":"${CHECKPOINT_FORMAT}"`;
const MAX_HEADER = 4096;

/** Latin-1 text of bytes (each byte one character): for sniffing a header without decoding errors. */
function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/**
 * Reads `encodeCheckpoint`'s bytes back into a model. Throws CheckpointError naming the problem: not a
 * checkpoint, truncated, corrupted (checksum), or written by a newer format version. `options` (see LoadOptions):
 * `source` names the bytes in those messages (a string alone is the source); `backend` and `fma` say where the
 * model runs.
 *
 * @example
 * const bytes = encodeCheckpoint(model);
 * const copy = decodeCheckpoint(bytes, "backup");   // the same model, optimizer state and all; errors say "backup: …"
 * const fused = decodeCheckpoint(bytes, { fma: true, source: "backup" });   // its products fused (relaxed SIMD)
 */
export function decodeCheckpoint(bytes: Uint8Array | ArrayBuffer, options?: string | LoadOptions): Sequential {
  const { source, run } = loadOptions("decodeCheckpoint", options, "checkpoint");
  if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
  if (!(bytes instanceof Uint8Array)) {
    throw new ValueError(`decodeCheckpoint bytes: expected a Uint8Array (a Node Buffer is one) or an ArrayBuffer, got ${fmtValue(bytes)}`);
  }
  const buf = bytes;
  const fail = (msg: string): never => { throw new CheckpointError(`${source}: ${msg}`); };
  if (buf.length === 0) fail(`empty file (truncated, or not a checkpoint)`);
  const start = latin1(buf.subarray(0, MAGIC.length));
  const magic = start === MAGIC;
  const nl = buf.subarray(0, MAX_HEADER).indexOf(10);
  if (nl < 0) {
    if (buf.length < MAX_HEADER && (magic || MAGIC.startsWith(start))) {
      fail(`truncated: the header line is incomplete (${buf.length} bytes in the file)`);
    }
    fail(magic ? `corrupted: no end to the header line` : `not a longshort checkpoint (no header line)`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(utf8Decode(buf.subarray(0, nl)) ?? "");
  } catch {
    return fail(magic ? `corrupted: the header line is not JSON` : `not a longshort checkpoint (the header line is not JSON)`);
  }
  if (typeof header !== "object" || header === null || header.format !== CHECKPOINT_FORMAT) {
    fail(`not a longshort checkpoint (format ${fmtValue((header as { format?: unknown } | null)?.format)})`);
  }
  const { version, bytes: size, sha256: sum } = header;
  if (typeof version !== "number" || !Number.isInteger(version) || version < 1) fail(`corrupted header: version ${fmtValue(version)}`);
  if ((version as number) > CHECKPOINT_VERSION) {
    fail(`written by checkpoint format version ${version}, newer than this longshort reads (up to ${CHECKPOINT_VERSION}); upgrade longshort`);
  }
  if (typeof size !== "number" || !Number.isInteger(size) || size < 0) fail(`corrupted header: payload size ${fmtValue(size)}`);
  if (typeof sum !== "string" || !/^[0-9a-f]{64}$/.test(sum)) fail(`corrupted header: sha256 ${fmtValue(sum)}`);
  const payload = buf.subarray(nl + 1);
  if (payload.length < (size as number)) fail(`truncated: the payload has ${payload.length} of ${size} bytes`);
  if (payload.length > (size as number)) fail(`corrupted: ${payload.length - (size as number)} unexpected bytes after the ${size}-byte payload`);
  const actual = sha256Hex(payload);
  if (actual !== sum) fail(`corrupted: checksum mismatch (sha256 of the payload is ${actual}, the header says ${sum})`);
  const text = utf8Decode(payload);
  if (text === null) return fail(`corrupted: the payload is not valid UTF-8`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`corrupted: the payload is not JSON (${(e as Error).message})`);
  }
  return fromJSON(json, source, run);
}
