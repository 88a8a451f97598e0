/**
 * Checkpoints: everything needed to resume training bit for bit, in memory (JSON) or on disk.
 *
 * A checkpoint holds the model's configuration (every layer option, dtype, seed, compile settings), its
 * weights, the optimizer's state (Adam m, v, iterations; SGD velocity), the LSTM states with the fixed
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
 * from a newer format version is refused by name. Files are written atomically: a temporary file in the
 * same directory is written and fsynced, renamed over the target, and the directory is fsynced, so a
 * crash or kill at any moment leaves either the old checkpoint or the new one, never a mix.
 *
 * `saveCheckpoint` / `loadCheckpoint` (and `model.save` / `Sequential.load`) return Promises; the Sync
 * variants block. Saving takes the snapshot synchronously when called, so training that continues while
 * the file is being written does not leak into it.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync,
} from "node:fs";
import { open, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { Sequential, type Layer } from "./model.js";
import { LSTM } from "./layers/lstm.js";
import { Dense, ACTIVATIONS, type Activation } from "./layers/dense.js";
import { Adam, SGD, type AdamOptions, type SGDOptions, type Optimizer } from "./optimizers.js";
import { LOSSES, type LossName } from "./losses.js";
import { Rng, INITIALIZERS, type InitializerName } from "./init.js";
import { type DType, type FloatArray, allocate } from "./tensor/tensor.js";
import { CheckpointError, LongshortError, ValueError, fmtShape, fmtValue } from "./errors.js";

/**
 * The format this version writes, and the newest it reads.
 *
 * @example
 * checkpointToJSON(model).version === CHECKPOINT_VERSION;   // true
 */
export const CHECKPOINT_VERSION = 1;
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
}

export interface DenseConfig {
  kind: "dense";
  units: number;
  activation: Activation;
  inputDim: number | null;
}

export interface CompileConfig {
  loss: LossName;
  metrics: "accuracy"[];
  onNonFinite: "throw" | "skip";
  optimizer: { name: "adam" | "sgd"; config: Record<string, number> };
}

/** A flat array stored as base64 of its little-endian bytes. */
export interface EncodedArray {
  name: string;
  shape: number[];
  dtype: DType;
  data: string;
}

/** The in-memory checkpoint: plain JSON, what `model.toJSON()` returns and `Sequential.fromJSON` takes. */
export interface CheckpointJSON {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  config: {
    dtype: DType;
    seed: string;
    layers: (LSTMConfig | DenseConfig)[];
    /** null when the model was never compiled. */
    compile: CompileConfig | null;
  };
  /** In getWeights order; null when the model is not built yet. */
  weights: EncodedArray[] | null;
  /** null when the model was never compiled. Slots: Adam [m, v], SGD [velocity], float64. */
  optimizer: { iterations: number; slots: EncodedArray[] } | null;
  /** The fixed batch size of a stateful model (null if not fixed) and each LSTM's last state (null if none). */
  states: { batchSize: number | null; layers: ({ h: EncodedArray; c: EncodedArray } | null)[] };
  /** The ARC4 state of the shuffling RNG (seedrandom's `state()`). */
  shuffleRng: { i: number; j: number; S: number[] };
}

// -----------------------------------------------------------------------------------------------
// Little-endian byte encoding

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function encodeArray(name: string, a: FloatArray, shape: number[]): EncodedArray {
  const dtype: DType = a instanceof Float32Array ? "float32" : "float64";
  let bytes: Buffer;
  if (LITTLE_ENDIAN) {
    bytes = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  } else {
    bytes = Buffer.alloc(a.byteLength);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let k = 0; k < a.length; k++) {
      if (dtype === "float32") dv.setFloat32(4 * k, a[k]!, true);
      else dv.setFloat64(8 * k, a[k]!, true);
    }
  }
  return { name, shape: shape.slice(), dtype, data: bytes.toString("base64") };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

// -----------------------------------------------------------------------------------------------
// Model → JSON

function layerConfig(l: Layer): LSTMConfig | DenseConfig {
  if (l instanceof LSTM) {
    return {
      kind: "lstm", units: l.units, inputDim: l.inputDim ?? null, returnSequences: l.returnSequences,
      stateful: l.stateful, batchSize: l.batchSize ?? null, unitForgetBias: l.unitForgetBias,
      kernelInitializer: l.kernelInitializer, recurrentInitializer: l.recurrentInitializer,
    };
  }
  return { kind: "dense", units: l.units, activation: l.activation, inputDim: l.inputDim ?? null };
}

function optimizerConfig(opt: Optimizer): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(opt.config())) if (v !== undefined) out[k] = v;
  return out;
}

/**
 * The model as a plain JSON object (what `model.toJSON()` returns): `JSON.stringify(model)` works.
 *
 * @example
 * const json = checkpointToJSON(model);
 * const copy = checkpointFromJSON(JSON.parse(JSON.stringify(json)));   // the same model, bit for bit
 */
export function checkpointToJSON(model: Sequential): CheckpointJSON {
  if (!(model instanceof Sequential)) {
    throw new ValueError(`checkpointToJSON model: expected a Sequential, got ${fmtValue(model)}`);
  }
  const built = model.params.length > 0;
  let weights: EncodedArray[] | null = null;
  if (built) {
    const names = model.weightNames(), shapes = model.weightShapes();
    weights = [];
    let off = 0;
    shapes.forEach((shape, i) => {
      const n = shape.reduce((a, b) => a * b, 1);
      weights!.push(encodeArray(names[i]!, model.params.subarray(off, off + n), shape));
      off += n;
    });
  }
  const opt = model.optimizer;
  const compiled = opt !== null && model.loss !== null;
  const slotNames = opt?.name === "adam" ? ["m", "v"] : ["velocity"];
  return {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    config: {
      dtype: model.dtype,
      seed: model.seed,
      layers: model.layers.map(layerConfig),
      compile: compiled
        ? {
          loss: model.loss!, metrics: model.metrics.slice() as "accuracy"[], onNonFinite: model.onNonFinite,
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
      batchSize: model.batchSize ?? null,
      layers: model.lstms.map((l, i) => {
        if (!l.stateH || !l.stateC) return null;
        const rows = l.stateH.length / l.units;
        return {
          h: encodeArray(`lstm_${i}/h`, l.stateH, [rows, l.units]),
          c: encodeArray(`lstm_${i}/c`, l.stateC, [rows, l.units]),
        };
      }),
    },
    shuffleRng: model.shuffleRng.state() as CheckpointJSON["shuffleRng"],
  };
}

// -----------------------------------------------------------------------------------------------
// JSON → model, validating every piece

/** Reads a checkpoint object, throwing CheckpointError with the path of the bad field. */
class Reader {
  constructor(private readonly source: string) {}

  fail(path: string, msg: string, cause?: unknown): never {
    const e = new CheckpointError(`${this.source}: ${path}: ${msg}`);
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
    if (data.length % 4 !== 0 || !BASE64.test(data)) this.fail(`${path}.data`, `not valid base64`);
    const bytes = Buffer.from(data, "base64");
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
      if (e instanceof LongshortError && !(e instanceof CheckpointError)) this.fail(path, e.message, e);
      throw e;
    }
  }
}

function readLayer(r: Reader, path: string, v: unknown): Layer {
  const o = r.obj(path, v);
  const kind = r.oneOf(`${path}.kind`, o.kind, ["lstm", "dense"] as const);
  // Every field is required (version 1 always writes them): a missing one must not fall back to a default.
  if (kind === "lstm") {
    const options = {
      units: r.int(`${path}.units`, o.units, 1),
      inputDim: r.optInt(`${path}.inputDim`, o.inputDim, 1),
      returnSequences: o.returnSequences as boolean,
      stateful: o.stateful as boolean,
      batchSize: r.optInt(`${path}.batchSize`, o.batchSize, 1),
      unitForgetBias: o.unitForgetBias as boolean,
      kernelInitializer: r.oneOf(`${path}.kernelInitializer`, o.kernelInitializer, INITIALIZERS),
      recurrentInitializer: r.oneOf(`${path}.recurrentInitializer`, o.recurrentInitializer, INITIALIZERS),
    };
    for (const k of ["returnSequences", "stateful", "unitForgetBias"] as const) {
      if (typeof options[k] !== "boolean") r.fail(`${path}.${k}`, `expected true or false, got ${fmtValue(options[k])}`);
    }
    if (options.inputDim === undefined) delete options.inputDim;
    if (options.batchSize === undefined) delete options.batchSize;
    return r.build(path, () => new LSTM(options));
  }
  const d = new Dense({ units: r.int(`${path}.units`, o.units, 1), activation: r.oneOf(`${path}.activation`, o.activation, ACTIVATIONS) });
  const inputDim = r.optInt(`${path}.inputDim`, o.inputDim, 1);
  if (inputDim !== undefined) d.inputDim = inputDim;
  return d;
}

/**
 * Rebuilds a model from `checkpointToJSON`'s object (what `Sequential.fromJSON` does). Every field is
 * validated; a bad one throws CheckpointError naming it.
 *
 * @example
 * const model = checkpointFromJSON(JSON.parse(text));
 */
export function checkpointFromJSON(json: unknown, source = "checkpoint"): Sequential {
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
  const layers = r.arr("config.layers", config.layers).map((l, i) => readLayer(r, `config.layers[${i}]`, l));
  const model = r.build("config", () => new Sequential(layers, { dtype, seed }));

  // Weights (building first when the first LSTM's inputDim was only known from data).
  if (top.weights !== null) {
    const ws = r.arr("weights", top.weights);
    if (model.params.length === 0) {
      const first = model.lstms[0]!.inputDim;
      if (first === undefined) r.fail("weights", `the model has weights but config.layers[0].inputDim is null`);
      r.build("config", () => model.build(first!));
    }
    const names = model.weightNames(), shapes = model.weightShapes();
    if (ws.length !== shapes.length) r.fail("weights", `expected ${shapes.length} arrays (${names.join(", ")}), got ${ws.length}`);
    let off = 0;
    const decoded = shapes.map((shape, i) => {
      const name = (ws[i] as { name?: unknown } | null)?.name;
      if (name !== names[i]) r.fail(`weights[${i}].name`, `expected ${JSON.stringify(names[i])}, got ${fmtValue(name)}`);
      return r.array(`weights[${i}] (${names[i]})`, ws[i], names[i]!, dtype, shape);
    });
    for (const a of decoded) { model.params.set(a, off); off += a.length; }
  } else if (model.params.length > 0) {
    r.fail("weights", `the configuration builds the model (config.layers[0].inputDim is set) but weights is null`);
  }

  // Compile settings and optimizer state.
  if (config.compile !== null) {
    const c = r.obj("config.compile", config.compile);
    const oc = r.obj("config.compile.optimizer", c.optimizer);
    const name = r.oneOf("config.compile.optimizer.name", oc.name, ["adam", "sgd"] as const);
    const ocfg = r.obj("config.compile.optimizer.config", oc.config);
    const optimizer = r.build("config.compile.optimizer.config", () => (name === "adam" ? new Adam(ocfg as AdamOptions) : new SGD(ocfg as SGDOptions)));
    const loss = r.oneOf("config.compile.loss", c.loss, LOSSES);
    const metrics = r.arr("config.compile.metrics", c.metrics).map((v, i) => r.oneOf(`config.compile.metrics[${i}]`, v, ["accuracy"] as const));
    const onNonFinite = r.oneOf("config.compile.onNonFinite", c.onNonFinite, ["throw", "skip"] as const);
    r.build("config.compile", () => model.compile({ optimizer, loss, metrics, onNonFinite }));
    const os = r.obj("optimizer", top.optimizer);
    optimizer.iterations = r.int("optimizer.iterations", os.iterations, 0);
    const slots = optimizer.slots();
    const saved = r.arr("optimizer.slots", os.slots);
    if (saved.length !== slots.length) r.fail("optimizer.slots", `expected ${slots.length} arrays for ${name}, got ${saved.length}`);
    const slotNames = name === "adam" ? ["m", "v"] : ["velocity"];
    slots.forEach((s, i) => s.set(r.array(`optimizer.slots[${i}]`, saved[i], slotNames[i]!, "float64", [s.length])));
  } else if (top.optimizer !== null) {
    r.fail("optimizer", `optimizer state without compile settings (config.compile is null)`);
  }

  // The fixed batch size and the LSTM states.
  const st = r.obj("states", top.states);
  const batchSize = r.optInt("states.batchSize", st.batchSize, 1);
  if (batchSize !== model.batchSize) {
    if (batchSize === undefined || !model.stateful) {
      r.fail("states.batchSize", `expected ${model.batchSize ?? null} (from the layers' configuration), got ${fmtValue(st.batchSize)}`);
    }
    model.setBatchSize(batchSize!);
  }
  const sl = r.arr("states.layers", st.layers);
  if (sl.length !== model.lstms.length) r.fail("states.layers", `expected ${model.lstms.length} entries (one per LSTM), got ${sl.length}`);
  const states = model.lstms.map((l, i) => {
    if (sl[i] === null) return null;
    const p = `states.layers[${i}]`, o = r.obj(p, sl[i]);
    const rows = r.int(`${p}.h.shape[0]`, (o.h as { shape?: unknown[] } | null)?.shape?.[0], 0);
    if (l.stateful && batchSize !== undefined && rows !== batchSize) {
      r.fail(`${p}.h.shape[0]`, `a stateful layer carries one row per batch row: expected ${batchSize}, got ${rows}`);
    }
    return {
      h: r.array(`${p}.h`, o.h, `lstm_${i}/h`, dtype, [rows, l.units]),
      c: r.array(`${p}.c`, o.c, `lstm_${i}/c`, dtype, [rows, l.units]),
    };
  });
  if (model.params.length === 0 && states.some((s) => s !== null)) r.fail("states.layers", `states for a model that is not built`);
  model.lstms.forEach((l, i) => {
    l.stateH = states[i]?.h ?? null;
    l.stateC = states[i]?.c ?? null;
  });

  // The shuffling RNG's position.
  const rng = r.obj("shuffleRng", top.shuffleRng);
  const S = r.arr("shuffleRng.S", rng.S);
  if (S.length !== 256) r.fail("shuffleRng.S", `expected 256 entries, got ${S.length}`);
  const seen = new Uint8Array(256);
  for (let k = 0; k < 256; k++) {
    const v = r.int(`shuffleRng.S[${k}]`, S[k], 0, 255);
    if (seen[v]++) r.fail(`shuffleRng.S[${k}]`, `${v} appears twice; the ARC4 state is a permutation of 0…255`);
  }
  const state = { i: r.int("shuffleRng.i", rng.i, 0, 255), j: r.int("shuffleRng.j", rng.j, 0, 255), S: S.slice() };
  model.shuffleRng = new Rng(`${model.seed}/shuffle`, state);
  return model;
}

// -----------------------------------------------------------------------------------------------
// Bytes: header + payload

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The checkpoint file's bytes: a header line with the format version, payload size and SHA-256, then the
 * payload. Deterministic: the same model state always gives the same bytes.
 *
 * @example
 * const bytes = encodeCheckpoint(model);
 * const same = decodeCheckpoint(bytes);
 */
export function encodeCheckpoint(model: Sequential): Buffer {
  const payload = Buffer.from(JSON.stringify(checkpointToJSON(model)), "utf8");
  const header = JSON.stringify({ format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, bytes: payload.length, sha256: sha256(payload) });
  return Buffer.concat([Buffer.from(`${header}\n`, "utf8"), payload]);
}

const MAGIC = `{"format":"${CHECKPOINT_FORMAT}"`;
const MAX_HEADER = 4096;

/**
 * Reads `encodeCheckpoint`'s bytes back into a model. Throws CheckpointError naming the problem: not a
 * checkpoint, truncated, corrupted (checksum), or written by a newer format version. `source` names the
 * bytes in those messages.
 *
 * @example
 * const bytes = encodeCheckpoint(model);                        // a Buffer, e.g. to send or store elsewhere
 * const copy = decodeCheckpoint(bytes, "backup");   // the same model, optimizer state and all; errors say "backup: …"
 */
export function decodeCheckpoint(bytes: Uint8Array, source = "checkpoint"): Sequential {
  if (!(bytes instanceof Uint8Array)) {
    throw new ValueError(`decodeCheckpoint bytes: expected a Uint8Array or Buffer, got ${fmtValue(bytes)}`);
  }
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (msg: string): never => { throw new CheckpointError(`${source}: ${msg}`); };
  if (buf.length === 0) fail(`empty file (truncated, or not a checkpoint)`);
  const start = buf.subarray(0, MAGIC.length).toString("latin1");
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
    header = JSON.parse(buf.subarray(0, nl).toString("utf8"));
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
  const actual = sha256(payload);
  if (actual !== sum) fail(`corrupted: checksum mismatch (sha256 of the payload is ${actual}, the header says ${sum})`);
  let json: unknown;
  try {
    json = JSON.parse(payload.toString("utf8"));
  } catch (e) {
    return fail(`corrupted: the payload is not JSON (${(e as Error).message})`);
  }
  return checkpointFromJSON(json, source);
}

// -----------------------------------------------------------------------------------------------
// Files, written atomically

function checkPath(what: string, path: unknown): string {
  if (typeof path !== "string" || path.length === 0) {
    throw new ValueError(`${what} path: expected a non-empty file path string, got ${fmtValue(path)}`);
  }
  return resolve(path);
}

function tempPath(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

function ioError(msg: string, cause: unknown): CheckpointError {
  const e = new CheckpointError(`${msg}: ${(cause as Error)?.message ?? String(cause)}`);
  (e as { cause?: unknown }).cause = cause;
  return e;
}

/** Some platforms (Windows) cannot open or fsync a directory; the rename is still atomic there. */
function ignorableDirSyncError(e: unknown): boolean {
  const code = (e as { code?: string })?.code;
  return code === "EISDIR" || code === "EINVAL" || code === "EPERM" || code === "EACCES" || code === "ENOTSUP";
}

/**
 * Writes a checkpoint atomically and durably, blocking until it is on disk.
 *
 * @example
 * saveCheckpointSync(model, "runs/epoch-5.ckpt");
 */
export function saveCheckpointSync(model: Sequential, path: string): void {
  const target = checkPath("save", path);
  const bytes = encodeCheckpoint(model);
  const tmp = tempPath(target);
  let fd = -1;
  try {
    fd = openSync(tmp, "wx", 0o644);
    for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, target);
  } catch (e) {
    if (fd >= 0) try { closeSync(fd); } catch { /* already failing */ }
    try { unlinkSync(tmp); } catch { /* never created, or already renamed */ }
    throw ioError(`save ${path}: cannot write the checkpoint`, e);
  }
  try {
    const dfd = openSync(dirname(target), "r");
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch (e) {
    if (!ignorableDirSyncError(e)) throw ioError(`save ${path}: written, but the directory could not be synced`, e);
  }
}

/**
 * Writes a checkpoint atomically and durably (what `model.save` does). The snapshot is taken when called.
 *
 * @example
 * await saveCheckpoint(model, "runs/epoch-5.ckpt");
 */
export async function saveCheckpoint(model: Sequential, path: string): Promise<void> {
  const target = checkPath("save", path);
  const bytes = encodeCheckpoint(model); // synchronous: the snapshot cannot see later training
  const tmp = tempPath(target);
  let fh: Awaited<ReturnType<typeof open>> | null = null;
  try {
    fh = await open(tmp, "wx", 0o644);
    await fh.writeFile(bytes);
    await fh.sync();
    await fh.close();
    fh = null;
    await rename(tmp, target);
  } catch (e) {
    if (fh) await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw ioError(`save ${path}: cannot write the checkpoint`, e);
  }
  try {
    const dh = await open(dirname(target), "r");
    try { await dh.sync(); } finally { await dh.close(); }
  } catch (e) {
    if (!ignorableDirSyncError(e)) throw ioError(`save ${path}: written, but the directory could not be synced`, e);
  }
}

/**
 * Reads a checkpoint file into a new model, blocking.
 *
 * @example
 * const model = loadCheckpointSync("runs/epoch-5.ckpt");
 */
export function loadCheckpointSync(path: string): Sequential {
  const file = checkPath("load", path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw ioError(`load ${path}: cannot read the checkpoint`, e);
  }
  return decodeCheckpoint(bytes, `load ${path}`);
}

/**
 * Reads a checkpoint file into a new model (what `Sequential.load` does).
 *
 * @example
 * const model = await loadCheckpoint("runs/epoch-5.ckpt");
 */
export async function loadCheckpoint(path: string): Promise<Sequential> {
  const file = checkPath("load", path);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw ioError(`load ${path}: cannot read the checkpoint`, e);
  }
  return decodeCheckpoint(bytes, `load ${path}`);
}
