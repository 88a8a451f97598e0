/**
 * What the interop tests share: agreement with a peer (tfjs, ONNX Runtime) recorded per label, bit equality, the
 * real TensorFlow.js's save, load, predict and fit on in-memory artifacts, ONNX Runtime on ids or features, and a
 * minimal protobuf reader for looking into an ONNX graph.
 */
import { afterAll, expect } from "vitest";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import { toOnnx, type Sequential, type Tensor } from "../../src/index.js";
import type { TfjsArtifactsInput } from "../../src/interop/tfjs.js";

/**
 * `expectAgree(label, ours, theirs, tol?)`: |ours − theirs| ≤ tol·(1 + |theirs|) everywhere (a NaN fails), the largest
 * difference kept under `label`; the suite prints them after its tests ("largest |longshort - `peers`| …").
 */
export function agreement(peers: string, TOL = 1e-5): (label: string, ours: ArrayLike<number>, theirs: ArrayLike<number>, tol?: number) => void {
  const maxDiffs: Record<string, number> = {};
  afterAll(() => {
    const lines = Object.entries(maxDiffs).map(([k, v]) => `  ${v.toExponential(2)}  ${k}`);
    console.info(`largest |longshort - ${peers}| per comparison:\n${lines.join("\n")}`);
  });
  return (label, ours, theirs, tol = TOL) => {
    expect(ours.length, `${label}: length`).toBe(theirs.length);
    let worst = 0;
    const bad: string[] = [];
    for (let k = 0; k < theirs.length; k++) {
      const d = Math.abs(ours[k]! - theirs[k]!);
      worst = Math.max(worst, d);
      if (!(d <= tol * (1 + Math.abs(theirs[k]!)))) bad.push(`[${k}] ours ${ours[k]} vs theirs ${theirs[k]} (|diff| ${d})`);
    }
    expect(bad.slice(0, 5), `${label}: ${bad.length} of ${theirs.length} values differ`).toEqual([]);
    maxDiffs[label] = Math.max(maxDiffs[label] ?? 0, worst);
  };
}

/** Largest |a − b|. */
export function distance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]! - b[k]!));
  return m;
}

/** The raw bytes of each tensor as hex: equality is bit equality (-0 and the last bit count). */
export function bits(ts: Tensor[]): string[] {
  return ts.map((t) => Buffer.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)).toString("hex"));
}

/** tfjs's save to memory. */
export async function tfSave(m: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let out: tf.io.ModelArtifacts | undefined;
  await m.save(tf.io.withSaveHandler(async (a) => {
    out = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
  }));
  return out!;
}

/** tfjs's load from memory. */
export async function tfLoad(a: TfjsArtifactsInput | tf.io.ModelArtifacts): Promise<tf.LayersModel> {
  return tf.loadLayersModel(tf.io.fromMemory(a as tf.io.ModelArtifacts));
}

/** A tfjs tensor of x: ids [B, T] or features [B, T, F]. */
function tfInput(x: number[][][] | number[][]): tf.Tensor {
  return Array.isArray(x[0]![0]) ? tf.tensor3d(x as number[][][]) : tf.tensor2d(x as number[][]);
}

/** tfjs's prediction on ids [B, T] or features [B, T, F]. */
export function tfPredict(m: tf.LayersModel, x: number[][][] | number[][]): { data: Float32Array; shape: number[] } {
  return tf.tidy(() => {
    const y = m.predict(tfInput(x)) as tf.Tensor;
    return { data: y.dataSync() as Float32Array, shape: y.shape.slice() };
  });
}

/** A few epochs of Adam (MSE) in tfjs, so that the weights a test reads back are tfjs-trained ones. */
export async function fitTf(m: tf.Sequential, x: number[][][] | number[][], y: Tensor): Promise<void> {
  m.compile({ optimizer: tf.train.adam(0.05), loss: "meanSquaredError" });
  const xs = tfInput(x), ys = tf.tensor(Array.from(y.data), y.shape.slice());
  await m.fit(xs, ys, { epochs: 3, batchSize: 4, verbose: 0 });
  xs.dispose();
  ys.dispose();
}

/** ORT's y for ids [B, T] (int64) or x [B, T, F] (float32). */
export async function runOrt(s: ort.InferenceSession, x: number[][] | number[][][]): Promise<ort.Tensor> {
  const rows = x as unknown[][];
  const dims = Array.isArray(rows[0]![0]) ? [rows.length, rows[0]!.length, (rows[0]![0] as number[]).length] : [rows.length, rows[0]!.length];
  const flat = (x as number[][]).flat(2) as number[];
  const input = dims.length === 2
    ? new ort.Tensor("int64", BigInt64Array.from(flat.map((v) => BigInt(v))), dims)
    : new ort.Tensor("float32", Float32Array.from(flat), dims);
  return (await s.run({ x: input })).y!;
}

/**
 * ONNX masking through sequence_lens, for a case built with zeroOutputForMask off and on: ORT's y is predict's on
 * rows padded at the end (every length from none to all, one step, a batch all padded at its last steps), NaN on rows
 * padded at the start or inside (post-padded rows beside them agree), and the graph follows zeroOutputForMask where
 * it changes predict (`zeroMatters`). `input(seed, T, masked, B)` gives the case's x with `masked(b, t)` steps padded.
 */
export async function expectOnnxMasking(
  name: string, make: (zeroOutputForMask: boolean) => Sequential, zeroMatters: boolean, tag: string,
  input: (seed: string, T: number, masked: (b: number, t: number) => boolean, B: number) => number[][] | number[][][],
  expectAgree: (label: string, ours: ArrayLike<number>, theirs: ArrayLike<number>) => void,
): Promise<void> {
  const outs: Float64Array[] = [];
  for (const z of [false, true]) {
    const model = make(z);
    const s = await ort.InferenceSession.create(toOnnx(model));
    for (const [T, lens] of [[5, [5, 3, 0, 1, 4]], [1, [1, 0]], [6, [2, 2, 6]]] as [number, number[]][]) {
      const x = input(`masked/${tag}/${T}`, T, (b, t) => t >= lens[b]!, lens.length);
      const want = model.predict(x as number[][]), got = await runOrt(s, x);
      expect(got.dims).toEqual(want.shape);
      expectAgree(`toOnnx masked: ${name}, zeroOutputForMask ${z} (T=${T})`, got.data as Float32Array, want.data);
      if (T === 5) outs.push(Float64Array.from(want.data));
    }
    const T = 5, marks = [(t: number) => t >= 3, (t: number) => t < 2, (t: number) => t === 1 || t === 3, () => false];
    const x = input(`nan/${tag}`, T, (b, t) => marks[b]!(t), 4);
    const want = model.predict(x as number[][]).data, got = (await runOrt(s, x)).data as Float32Array, per = want.length / 4;
    for (const b of [0, 3]) expectAgree(`toOnnx masked, post-padded rows beside others: ${name} row ${b}`, got.subarray(b * per, (b + 1) * per), want.subarray(b * per, (b + 1) * per));
    for (const b of [1, 2]) expect(Array.from(got.subarray(b * per, (b + 1) * per)).every(Number.isNaN), `row ${b}`).toBe(true);
  }
  if (zeroMatters) expect(distance(outs[0]!, outs[1]!)).toBeGreaterThan(1e-4);
  else expect(distance(outs[0]!, outs[1]!)).toBe(0);
}

// A minimal protobuf reader: varint and length-delimited fields (all an ONNX graph's nodes use); fixed ones skipped.
export interface PbField { field: number; wire: number; int?: bigint; bytes?: Uint8Array }

export function pbFields(buf: Uint8Array): PbField[] {
  const out: PbField[] = [];
  let p = 0;
  const varint = (): bigint => {
    let v = 0n, shift = 0n;
    for (;;) {
      const b = buf[p++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  };
  while (p < buf.length) {
    const key = Number(varint());
    const field = key >>> 3, wire = key & 7;
    if (wire === 0) out.push({ field, wire, int: varint() });
    else if (wire === 2) {
      const n = Number(varint());
      out.push({ field, wire, bytes: buf.subarray(p, p + n) });
      p += n;
    } else if (wire === 5) p += 4;
    else if (wire === 1) p += 8;
    else throw new Error(`protobuf: unexpected wire type ${wire}`);
  }
  return out;
}

export const utf8 = (b: Uint8Array): string => new TextDecoder().decode(b);

export interface OnnxNodeInfo { op: string; name: string; inputs: string[]; outputs: string[]; attrs: Record<string, number | string | string[]> }

/** The graph's nodes: op type, name, inputs, outputs, and int / string / strings attributes (AttributeProto i 3, s 4, strings 9). */
export function onnxNodes(model: Uint8Array): OnnxNodeInfo[] {
  const graph = pbFields(model).find((f) => f.field === 7)!.bytes!;
  return pbFields(graph).filter((f) => f.field === 1).map((n) => {
    const fs = pbFields(n.bytes!);
    const attrs: OnnxNodeInfo["attrs"] = {};
    for (const a of fs.filter((f) => f.field === 5)) {
      const af = pbFields(a.bytes!);
      const name = utf8(af.find((f) => f.field === 1)!.bytes!);
      const i = af.find((f) => f.field === 3), s = af.find((f) => f.field === 4), ss = af.filter((f) => f.field === 9);
      attrs[name] = i ? Number(i.int!) : s ? utf8(s.bytes!) : ss.map((f) => utf8(f.bytes!));
    }
    const str = (k: number) => fs.filter((f) => f.field === k).map((f) => utf8(f.bytes!));
    return { op: str(4)[0]!, name: str(3)[0]!, inputs: str(1), outputs: str(2), attrs };
  });
}

/** Each initializer's dims, by name (GraphProto.initializer 5 → TensorProto dims 1, name 8). */
export function onnxInitializerDims(model: Uint8Array): Record<string, number[]> {
  const graph = pbFields(model).find((f) => f.field === 7)!.bytes!;
  const out: Record<string, number[]> = {};
  for (const t of pbFields(graph).filter((f) => f.field === 5)) {
    const fs = pbFields(t.bytes!);
    out[utf8(fs.find((f) => f.field === 8)!.bytes!)] = fs.filter((f) => f.field === 1).map((f) => Number(f.int!));
  }
  return out;
}
