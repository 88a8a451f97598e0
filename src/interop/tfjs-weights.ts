/**
 * The TensorFlow.js Layers format, import of the weights: the weight specs (name, shape, dtype, quantization)
 * checked in order against the bytes actually given, before anything sized by the file is allocated; the
 * weight data as one buffer; every spec matched to a slot of a layer plan (tfjs-topology.ts) by its name,
 * not its position; and each spec's values decoded to float32, dequantized as tfjs does.
 */
import { FormatError, fmtValue } from "../errors.js";
import { type LayerPlan, fail, isObject } from "./tfjs-topology.js";

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
export function parseSpecs(src: string, where: string, specsV: unknown, dataBytes: number, dataLabel: string): Spec[] {
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
export function weightBytes(v: unknown): Uint8Array {
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
export function decode(spec: Spec, bytes: Uint8Array): Float32Array {
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
 * recurrent_kernel, bias, or Keras 3's variable index), with any ":0" suffix dropped; a Bidirectional's direction is
 * a segment after its name ("bidirectional/forward_lstm/kernel", Keras 3 "layers/bidirectional/backward_layer/cell/vars/1").
 */
export function matchSpecs(plans: LayerPlan[], specs: Spec[]): Spec[][] {
  const byName = new Map<string, number>();
  plans.forEach((p, i) => p.names.forEach((n) => byName.set(n, i)));
  const slots: (Spec | undefined)[][] = plans.map((p) => p.slots.map(() => undefined));
  const allNames = plans.flatMap((p) => p.names);
  for (const s of specs) {
    if (s.optimizer) continue;
    const who = `weightSpecs[${s.index}] (${JSON.stringify(s.name)})`;
    const tokens = s.name.replace(/:\d+$/, "").split("/");
    const last = tokens.pop()!;
    const at = tokens.findIndex((t) => byName.has(t));
    if (at < 0) {
      fail(`${who}: names no layer of the topology (layers: ${allNames.map((n) => JSON.stringify(n)).join(", ")})`);
    }
    const li = byName.get(tokens[at]!)!;
    const plan = plans[li]!;
    // A Bidirectional's weight names its direction by a later segment; its slots are the direction's half.
    let base = 0, own = plan.slots;
    if (plan.directions) {
      const [fw, bw] = plan.directions, half = plan.slots.length / 2;
      const d = tokens.slice(at + 1).map((t) => (fw.has(t) ? 0 : bw.has(t) ? 1 : -1)).find((v) => v >= 0);
      if (d === undefined) {
        fail(`${who}: names neither direction of ${plan.where} (expected a path segment ${[...fw, ...bw].map((t) => JSON.stringify(t)).join(", ")})`);
      }
      base = d * half;
      own = plan.slots.slice(base, base + half).map((s) => s.slice(s.indexOf("/") + 1));
    }
    let k = own.indexOf(last);
    if (k < 0 && /^\d+$/.test(last) && Number(last) < own.length) k = Number(last);
    if (k < 0) fail(`${who}: ${JSON.stringify(last)} is not a weight of ${plan.where} (expected ${plan.slots.join(", ")})`);
    k += base;
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
