/**
 * PyTorch through safetensors: the weights as the state_dict of
 *
 *     lstm  = nn.ModuleList([nn.LSTM(I_k, H_k, batch_first=True) for each LSTM layer k])
 *     gru   = nn.ModuleList([nn.GRU(I_k, H_k, batch_first=True) for each GRU layer k])
 *     dense = nn.ModuleList([nn.Linear(in_j, out_j) for each Dense layer j])
 *     embedding = nn.ModuleList([nn.Embedding(V, D) for each Embedding layer])
 *
 * keys lstm.{k}.weight_ih_l0 [4H, I], lstm.{k}.weight_hh_l0 [4H, H], lstm.{k}.bias_ih_l0 [4H],
 * lstm.{k}.bias_hh_l0 [4H], gru.{k}.… likewise with 3H, dense.{j}.weight [out, in], dense.{j}.bias [out],
 * embedding.{k}.weight [V, D]. A Bidirectional is one nn.LSTM / nn.GRU with bidirectional=True in that list: its
 * forward direction's keys as above, its backward direction's with the suffix `_reverse` (weight_ih_l0_reverse, …),
 * PyTorch's names; torch's output [.., 2H] is then the Bidirectional's with mergeMode "concat".
 *
 * PyTorch's LSTM gate blocks are i, f, g, o, the same order as Keras's i, f, c, o, so a weight only needs a
 * transpose: weight_ih = kernelᵀ, weight_hh = recurrentKernelᵀ, weight = kernelᵀ. PyTorch has two biases per
 * LSTM where Keras has one: export writes ours as bias_ih and zeros as bias_hh; import sums them.
 *
 * PyTorch's GRU is Keras's with resetAfter: true (n = tanh(W_n x + b_in + r ⊙ (U_n h + b_hn)), h' = (1 − z) ⊙ n
 * + z ⊙ h), with its gate blocks in the order r, z, n where Keras has z, r, h: the blocks are swapped on the way,
 * and its two biases are the rows of Keras's (2, 3H) bias. A GRU with resetAfter: false has no PyTorch form.
 *
 * The file (safetensors format, as its specification describes it): 8 bytes, the header's length N as a
 * little-endian unsigned 64-bit integer; N bytes of UTF-8 JSON mapping each tensor name to
 * { dtype, shape, data_offsets: [begin, end] } (offsets into the data that follows the header) plus an optional
 * "__metadata__" map of strings to strings; then the data, little-endian and row-major, every byte belonging to
 * exactly one tensor. We pad the header with spaces so that the data starts 8-byte aligned.
 *
 * `__metadata__` carries longshort's configuration (the checkpoint format's layer list), so that the file alone
 * rebuilds the model; a file made by PyTorch has none and loads into a model you give.
 */
import { Sequential } from "../model.js";
import type { Layer } from "../engine.js";
import { LSTM } from "../layers/lstm.js";
import { GRU } from "../layers/gru.js";
import { Bidirectional } from "../layers/bidirectional.js";
import { Embedding } from "../layers/embedding.js";
import { Masking } from "../layers/masking.js";
import { type DType, fromData } from "../tensor/tensor.js";
import { engineToJSON } from "../checkpoint-json.js";
import { type LoadOptions, layersFromConfig, loadOptions } from "../checkpoint.js";
import { FormatError, StateError, ValueError, fmtShape, fmtValue, fmtInstance } from "../errors.js";
import { utf8Decode, utf8Encode } from "../bytes.js";
import { assemble, expectedShapes, type ImportedWeight } from "./build.js";

/** The metadata key that holds longshort's configuration, and the one that holds its format version. */
const META_CONFIG = "longshort.config";
const META_VERSION = "longshort.version";
/** The reference implementation refuses headers above 100 MB; so do we, before decoding a byte of one. */
const MAX_HEADER = 100_000_000;
const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** One PyTorch tensor of the state_dict and where its values come from in getWeights order. */
interface KeySpec {
  key: string;
  shape: number[];
  /** Index into getWeights, and whether the PyTorch tensor is that weight transposed. */
  weight: number;
  transpose: boolean;
  /** bias_hh: summed into the LSTM bias on import, zeros on export. */
  extraBias?: boolean;
  /** A GRU's: H, when the PyTorch tensor's gate axis (its rows) is in PyTorch's order (r, z, n), ours (z, r, h). */
  gates?: number;
  /** Where in the weight the tensor's values start (a GRU's recurrent bias: row 1 of its (2, 3H) bias). */
  at?: number;
}

/** The gate axis between PyTorch's GRU order and ours: PyTorch's block k (r, z, n) is our block GRU_BLOCK[k] (z, r, h). */
const GRU_BLOCK = [1, 0, 2];

/** Index g of a tensor's gate axis (its rows) as ours. */
function gateRow(s: KeySpec, g: number): number {
  if (s.gates === undefined) return g;
  const H = s.gates;
  return GRU_BLOCK[Math.floor(g / H)]! * H + (g % H);
}

/** The state_dict keys of `layers` fed `inputDim` features, in the order they are written. */
function keySpecs(layers: readonly Layer[], inputDim: number): KeySpec[] {
  const shapes = expectedShapes(layers, inputDim);
  const specs: KeySpec[] = [];
  let w = 0, li = 0, di = 0, ei = 0, gi = 0;
  // A recurrent cell's four tensors (nn.LSTM's / nn.GRU's `*_l0`, or `*_l0_reverse` for a Bidirectional's backward
  // direction, as nn.LSTM(bidirectional=True) names them).
  const cell = (l: LSTM | GRU, k: number, suffix: string): void => {
    const [I, G] = shapes[w]!, H = l.units, kind = l instanceof GRU ? "gru" : "lstm", gates = l instanceof GRU ? H : undefined;
    if (l instanceof GRU && !l.resetAfter) {
      throw new ValueError(`safetensors: layer ${layers.indexOf(l)} is a GRU with resetAfter: false, which PyTorch's nn.GRU does not compute (it applies the reset gate after the recurrent product, resetAfter: true)`);
    }
    specs.push({ key: `${kind}.${k}.weight_ih_l0${suffix}`, shape: [G!, I!], weight: w, transpose: true, gates });
    specs.push({ key: `${kind}.${k}.weight_hh_l0${suffix}`, shape: [G!, H], weight: w + 1, transpose: true, gates });
    if (l.useBias) {
      specs.push({ key: `${kind}.${k}.bias_ih_l0${suffix}`, shape: [G!], weight: w + 2, transpose: false, gates });
      if (l instanceof GRU) specs.push({ key: `gru.${k}.bias_hh_l0${suffix}`, shape: [G!], weight: w + 2, transpose: false, gates, at: G! });
      else specs.push({ key: `lstm.${k}.bias_hh_l0${suffix}`, shape: [G!], weight: w + 2, transpose: false, extraBias: true });
    }
    w += l.useBias ? 3 : 2;
  };
  for (const l of layers) {
    if (l instanceof Embedding) {
      // nn.Embedding(V, D).weight is (V, D), our layout.
      specs.push({ key: `embedding.${ei++}.weight`, shape: [l.inputDim, l.units], weight: w++, transpose: false });
    } else if (l instanceof Bidirectional) {
      const k = l.forwardLayer instanceof GRU ? gi++ : li++;
      if (l.forwardLayer instanceof GRU && !l.forwardLayer.resetAfter) {
        throw new ValueError(`safetensors: layer ${layers.indexOf(l)} is a Bidirectional GRU with resetAfter: false, which PyTorch's nn.GRU does not compute (it applies the reset gate after the recurrent product, resetAfter: true)`);
      }
      cell(l.forwardLayer, k, "");
      cell(l.backwardLayer, k, "_reverse");
    } else if (l instanceof GRU) {
      if (!l.resetAfter) {
        throw new ValueError(`safetensors: layer ${layers.indexOf(l)} is a GRU with resetAfter: false, which PyTorch's nn.GRU does not compute (it applies the reset gate after the recurrent product, resetAfter: true)`);
      }
      cell(l, gi++, "");
    } else if (l instanceof LSTM) {
      cell(l, li++, "");
    } else {
      const j = di++, [In, D] = shapes[w]!;
      specs.push({ key: `dense.${j}.weight`, shape: [D!, In!], weight: w, transpose: true });
      if (l.useBias) specs.push({ key: `dense.${j}.bias`, shape: [D!], weight: w + 1, transpose: false });
      w += l.useBias ? 2 : 1;
    }
  }
  return specs;
}

/**
 * The model's weights as a safetensors file whose keys are the PyTorch state_dict described above (F32 for a
 * float32 model, F64 for float64), with longshort's configuration in `__metadata__`. Deterministic: the same
 * weights always give the same bytes.
 *
 * @example
 * const bytes = toSafetensors(model);           // then in PyTorch: safetensors.torch.load_file(path)
 * const same = fromSafetensors(bytes);          // rebuilt from the metadata alone
 */
export function toSafetensors(model: Sequential): Uint8Array {
  if (!(model instanceof Sequential)) throw new ValueError(`toSafetensors model: expected a Sequential, got ${fmtInstance(model, "Sequential")}`);
  const e = model.engine;
  if (!e.built) throw new StateError(`toSafetensors: the model is not built yet (give the first layer inputDim, call build, or run it once)`);
  const specs = keySpecs(e.layers, e.inputDim!);
  const weights = model.getWeights();
  const dtype = e.dtype === "float32" ? "F32" : "F64", width = DTYPE_BYTES[dtype]!;
  const json = engineToJSON(e);
  const header: Record<string, unknown> = {
    __metadata__: {
      [META_VERSION]: String(json.version),
      [META_CONFIG]: JSON.stringify({ dtype: e.dtype, layers: json.config.layers, ...(e.maskingValue !== null ? { masking: { maskValue: e.maskingValue } } : {}) }),
    },
  };
  let off = 0;
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    header[s.key] = { dtype, shape: s.shape, data_offsets: [off, off + n * width] };
    off += n * width;
  }
  let text = JSON.stringify(header);
  const headerBytes = utf8Encode(text);
  const pad = (8 - (headerBytes.length % 8)) % 8; // the data starts at 8 + N: keep it 8-byte aligned
  text += " ".repeat(pad);
  const N = headerBytes.length + pad;
  const out = new Uint8Array(8 + N + off);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, N, true); // low 32 bits of the u64; the high ones stay 0
  out.set(utf8Encode(text), 8);
  let p = 8 + N;
  for (const s of specs) {
    const src = weights[s.weight]!.data;
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (s.extraBias) { p += n * width; continue; } // zeros: the buffer is zero-filled
    // PyTorch's [rows, cols] is our [cols, rows] transposed: element (r, c) is ours at c·rows + r.
    // Not transposed (a bias, an embedding table): the same layout, row-major.
    const rows = s.shape[0]!, cols = s.shape.length > 1 ? s.shape[1]! : 1;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++, p += width) {
        const v = s.transpose ? src[c * rows + gateRow(s, r)]! : src[(s.at ?? 0) + gateRow(s, r) * cols + c]!;
        if (width === 4) dv.setFloat32(p, v, true);
        else dv.setFloat64(p, v, true);
      }
    }
  }
  return out;
}

/** A tensor entry of a parsed header, checked against the file. */
interface Entry { dtype: string; shape: number[]; begin: number; end: number }

/**
 * Parses and checks a safetensors file's layout, allocating nothing sized by the header's claims: the header
 * length against the file, every entry's dtype, shape and offsets against the data, and that the tensors tile
 * the data with no gap and no overlap.
 */
function parse(bytes: Uint8Array, fail: (msg: string) => never): { entries: Map<string, Entry>; metadata: Record<string, string>; data: DataView } {
  if (bytes.length < 8) fail(`truncated: ${bytes.length} bytes, fewer than the 8 of the header length`);
  const head = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lo = head.getUint32(0, true), hi = head.getUint32(4, true);
  if (hi !== 0 || lo > MAX_HEADER) fail(`the header length ${hi * 2 ** 32 + lo} is over the limit of ${MAX_HEADER} bytes (not a safetensors file?)`);
  if (8 + lo > bytes.length) fail(`truncated: the header says it is ${lo} bytes, the file has ${bytes.length - 8} after the length`);
  const text = utf8Decode(bytes.subarray(8, 8 + lo));
  if (text === null) return fail(`the header is not valid UTF-8`);
  if (!text.startsWith("{")) fail(`the header does not start with "{" (not a safetensors file?)`);
  let json: unknown;
  try { json = JSON.parse(text); } catch (err) { return fail(`the header is not JSON (${(err as Error).message})`); }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return fail(`the header is not a JSON object`);
  const dataLen = bytes.length - 8 - lo;
  const entries = new Map<string, Entry>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof v !== "object" || v === null || Array.isArray(v)) fail(`__metadata__: expected an object of strings, got ${fmtValue(v)}`);
      for (const [k, s] of Object.entries(v as object)) if (typeof s !== "string") fail(`__metadata__.${k}: expected a string, got ${fmtValue(s)}`);
      metadata = v as Record<string, string>;
      continue;
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) fail(`${name}: expected an object { dtype, shape, data_offsets }, got ${fmtValue(v)}`);
    const o = v as Record<string, unknown>;
    const width = typeof o.dtype === "string" ? DTYPE_BYTES[o.dtype] : undefined;
    if (width === undefined) fail(`${name}.dtype: expected one of ${Object.keys(DTYPE_BYTES).join(", ")}, got ${fmtValue(o.dtype)}`);
    const isIndex = (d: unknown): d is number => typeof d === "number" && Number.isSafeInteger(d) && d >= 0;
    if (!Array.isArray(o.shape) || !o.shape.every(isIndex)) fail(`${name}.shape: expected an array of non-negative integers, got ${JSON.stringify(o.shape)}`);
    const offs = o.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !isIndex(offs[0]) || !isIndex(offs[1]) || offs[0] > offs[1]) {
      fail(`${name}.data_offsets: expected [begin, end] with 0 ≤ begin ≤ end, got ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end > dataLen) fail(`${name}.data_offsets: [${begin}, ${end}] runs past the ${dataLen} bytes of data (truncated?)`);
    // The element count, bounded by the bytes it must fill (so no product overflows past 2^53).
    let n = 1;
    for (const d of o.shape as number[]) { n *= d; if (n * width! > end - begin) break; }
    if (n * width! !== end - begin) {
      fail(`${name}: shape ${fmtShape(o.shape as number[])} of ${o.dtype} needs ${n * width!} bytes, data_offsets give ${end - begin}`);
    }
    entries.set(name, { dtype: o.dtype as string, shape: o.shape as number[], begin, end });
  }
  const sorted = [...entries.entries()].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let at = 0;
  for (const [name, en] of sorted) {
    if (en.begin !== at) fail(en.begin < at ? `${name} overlaps the tensor before it (bytes ${en.begin} < ${at})` : `a gap of ${en.begin - at} bytes before ${name}`);
    at = en.end;
  }
  if (at !== dataLen) fail(`${dataLen - at} bytes after the last tensor belong to none`);
  return { entries, metadata, data: new DataView(bytes.buffer, bytes.byteOffset + 8 + lo, dataLen) };
}

/**
 * A model from a safetensors file. Without `model`, the file must carry longshort's configuration in
 * `__metadata__` (as `toSafetensors` writes), and a new model is built from it. With `model`, the file's tensors
 * are loaded into it by their PyTorch state_dict keys (a file saved by PyTorch from the module described in
 * the README): every key, shape and value is checked first, and on any error the model is left unchanged.
 * F32 and F64 tensors are read (converted to the model's dtype); an LSTM's bias is bias_ih + bias_hh.
 * Every size and offset in the file is checked before anything is allocated; a bad file throws FormatError.
 * `options` (see LoadOptions): `source` names the bytes in errors; `backend` and `fma`, where a new model runs.
 *
 * @example
 * const model = fromSafetensors(bytes);               // a file from toSafetensors
 * fromSafetensors(torchBytes, model);                 // PyTorch-trained weights into a model of the same shape
 */
export function fromSafetensors(bytes: Uint8Array | ArrayBuffer, model?: Sequential, options?: string | LoadOptions): Sequential {
  if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
  if (!(bytes instanceof Uint8Array)) throw new ValueError(`fromSafetensors bytes: expected a Uint8Array or an ArrayBuffer, got ${fmtValue(bytes)}`);
  if (model !== undefined && !(model instanceof Sequential)) throw new ValueError(`fromSafetensors model: expected a Sequential or nothing, got ${fmtInstance(model, "Sequential")}`);
  const { source, run } = loadOptions("fromSafetensors", options, "safetensors");
  if (model !== undefined && typeof options === "object" && (options.backend !== undefined || options.fma !== undefined)) {
    throw new ValueError(`fromSafetensors options: backend and fma choose how a new model runs; the model given keeps its own (backend "${model.backend}", fma ${model.fma})`);
  }
  const fail = (msg: string): never => { throw new FormatError(`${source}: ${msg}`); };
  const { entries, metadata, data } = parse(bytes, fail);

  let layers: Layer[], inputDim: number, dtype: DType, masking: Masking | null = null;
  if (model) {
    if (!model.engine.built) throw new StateError(`fromSafetensors: the model to load into is not built yet (give the first layer inputDim or call build)`);
    layers = model.engine.layers.slice();
    inputDim = model.engine.inputDim!;
    dtype = model.dtype;
  } else {
    const configText = metadata[META_CONFIG];
    if (configText === undefined) {
      return fail(`no longshort configuration in __metadata__ (a file saved by PyTorch?): pass the model to load it into, fromSafetensors(bytes, model)`);
    }
    const version = Number(metadata[META_VERSION]);
    let config: { dtype?: unknown; layers?: unknown; masking?: unknown };
    try { config = JSON.parse(configText); } catch (err) { return fail(`__metadata__.${META_CONFIG} is not JSON (${(err as Error).message})`); }
    if (typeof config !== "object" || config === null) return fail(`__metadata__.${META_CONFIG}: expected an object`);
    if (config.dtype !== "float32" && config.dtype !== "float64") return fail(`__metadata__.${META_CONFIG}.dtype: expected "float32" or "float64", got ${fmtValue(config.dtype)}`);
    dtype = config.dtype;
    const read = layersFromConfig(source, `__metadata__.${META_CONFIG}.layers`, config.layers, version, FormatError);
    if (read.inputDim === undefined) return fail(`__metadata__.${META_CONFIG}.layers[0].inputDim is null`);
    layers = read.layers;
    inputDim = read.inputDim;
    if (config.masking !== undefined && config.masking !== null) {
      const mv = (config.masking as { maskValue?: unknown }).maskValue;
      if (typeof mv !== "number" || !Number.isFinite(mv)) return fail(`__metadata__.${META_CONFIG}.masking.maskValue: expected a finite number, got ${fmtValue(mv)}`);
      masking = new Masking({ maskValue: mv });
    }
  }

  // Every key the layers need, at the shape they need, and nothing else.
  const specs = keySpecs(layers, inputDim);
  const wanted = new Set(specs.map((s) => s.key));
  const extra = [...entries.keys()].filter((k) => !wanted.has(k));
  const missing = specs.filter((s) => !entries.has(s.key)).map((s) => s.key);
  if (missing.length) fail(`missing ${missing.join(", ")} (the model expects ${specs.map((s) => s.key).join(", ")})`);
  if (extra.length) fail(`unexpected ${extra.join(", ")} (the model expects ${specs.map((s) => s.key).join(", ")})`);
  for (const s of specs) {
    const en = entries.get(s.key)!;
    if (en.dtype !== "F32" && en.dtype !== "F64") fail(`${s.key}: dtype ${en.dtype} is not read; expected F32 or F64`);
    if (en.shape.length !== s.shape.length || en.shape.some((d, i) => d !== s.shape[i])) {
      fail(`${s.key}: expected shape ${fmtShape(s.shape)}, got ${fmtShape(en.shape)}`);
    }
  }

  // Values, in getWeights layout (sizes are now known to be what the file holds).
  const shapes = expectedShapes(layers, inputDim);
  const values = shapes.map((sh) => new Float64Array(sh.reduce((a, b) => a * b, 1)));
  for (const s of specs) {
    const en = entries.get(s.key)!, out = values[s.weight]!;
    const f64 = en.dtype === "F64", width = f64 ? 8 : 4;
    const rows = s.shape[0]!, cols = s.shape.length > 1 ? s.shape[1]! : 1;
    let p = en.begin;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++, p += width) {
        const v = f64 ? data.getFloat64(p, true) : data.getFloat32(p, true);
        if (v - v !== 0) fail(`${s.key}: non-finite value ${v} at flat index ${r * cols + c}`);
        if (s.transpose) out[c * rows + gateRow(s, r)] = v;
        else if (s.extraBias) out[r] = out[r]! + v;
        else out[(s.at ?? 0) + gateRow(s, r) * cols + c] = v;
      }
    }
  }
  const weights: ImportedWeight[] = values.map((v, i) => ({ name: `weights[${i}]`, shape: shapes[i]!, data: v }));
  if (model) {
    model.setWeights(values.map((v, i) => fromData(v, shapes[i]!)));
    return model;
  }
  return assemble(source, layers, inputDim, dtype, weights, undefined, masking, run);
}
