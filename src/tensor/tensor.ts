/**
 * The tensor core's public face: an ndarray over a Float32Array or Float64Array, built from nested plain
 * arrays or other ndarrays, always contiguous and row-major when we return it. This file (with the kernels
 * beside it) is the only place that knows ndarray internals; layers work on the raw typed arrays.
 */
import { currentArena } from "../wasm/arena.js";
import ndarray from "ndarray";
import type { NdArray } from "ndarray";
import ops from "ndarray-ops";
import { ShapeError, ValueError, fmtShape, fmtValue, toSize } from "../errors.js";

export type DType = "float32" | "float64";
export type FloatArray = Float32Array | Float64Array;
/** What the engine reads of any ndarray: a Tensor, or a user's view with other strides and data. */
export interface StridedArray {
  data: any; // a typed array or a plain array
  shape: number[];
  stride: number[];
  offset: number;
}

/**
 * An ndarray over float data: scijs ndarray's interface (views such as `lo`, `hi`, `pick` and
 * `transpose` are O(1) and never copy), declared here so that the package's types stand on their own.
 */
export interface Tensor extends StridedArray {
  data: FloatArray;
  size: number;
  dimension: number;
  dtype: string;
  order: number[];
  get(...index: number[]): number;
  set(...args: number[]): number;
  index(...index: number[]): number;
  lo(...index: number[]): Tensor;
  hi(...index: number[]): Tensor;
  step(...index: number[]): Tensor;
  transpose(...axes: number[]): Tensor;
  pick(...index: (number | null)[]): Tensor;
  T: Tensor;
}
export type TensorLike = Tensor | number[] | number[][] | number[][][] | number[][][][];
export type NestedArray = number | NestedArray[];

export const DEFAULT_DTYPE: DType = "float64";

export function checkDType(name: string, dtype: unknown): DType {
  if (dtype === "float32" || dtype === "float64") return dtype;
  throw new ValueError(`${name}: expected "float32" or "float64", got ${fmtValue(dtype)}`);
}

/** Allocates a typed array of the dtype (in the SIMD backend's memory while a model allocates there). */
export function allocate(dtype: DType, size: number): FloatArray {
  try {
    const arena = currentArena();
    if (arena) return arena.alloc(dtype, size);
    return dtype === "float32" ? new Float32Array(size) : new Float64Array(size);
  } catch (e) {
    // A RangeError from deep inside a build or a workspace would not say what was too large.
    throw new ValueError(`buffer size: cannot allocate ${size} ${dtype} values (${(e as Error).message}); reduce units, batch size or timesteps`);
  }
}

/** True for an object that looks like an ndarray (data, shape, stride, offset), well-formed or not. */
function looksLikeTensor(x: unknown): boolean {
  return (
    typeof x === "object" && x !== null && !Array.isArray(x) &&
    "shape" in x && "stride" in x && "data" in x && "offset" in x
  );
}

/**
 * Why an ndarray-like object cannot be read safely, or null when it can: the shape, stride and offset
 * must be integers that stay inside the data, and the data numeric. (A user-built object that only looks
 * like an ndarray must fail here, with a message, not later with a TypeError inside a loop.)
 */
function ndarrayProblem(x: { shape: unknown; stride: unknown; offset: unknown; data: unknown }): string | null {
  const { shape, stride, offset, data } = x;
  // Plain loops rather than .some(): every predict call checks its input here.
  if (!Array.isArray(shape)) return `its shape is not a list of non-negative integers`;
  for (let d = 0; d < shape.length; d++) {
    const v: unknown = shape[d];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) return `its shape is not a list of non-negative integers`;
  }
  if (!Array.isArray(stride) || stride.length !== shape.length) return `its stride is not a list of ${shape.length} integers`;
  for (let d = 0; d < stride.length; d++) {
    const v: unknown = stride[d];
    if (typeof v !== "number" || !Number.isInteger(v)) return `its stride is not a list of ${shape.length} integers`;
  }
  if (typeof offset !== "number" || !Number.isInteger(offset)) return `its offset is not an integer`;
  const numeric = Array.isArray(data) || (ArrayBuffer.isView(data) && !(data instanceof DataView) &&
    !(data instanceof BigInt64Array) && !(data instanceof BigUint64Array));
  if (!numeric) return `its data is not an array or a numeric typed array`;
  if (shape.includes(0)) return null;
  let lo = offset, hi = offset;
  for (let d = 0; d < shape.length; d++) {
    const span = (shape[d]! - 1) * stride[d]!;
    if (span < 0) lo += span; else hi += span;
  }
  if (lo < 0 || hi >= (data as ArrayLike<unknown>).length) return `its shape, stride and offset reach outside its data`;
  return null;
}

/** True for a well-formed ndarray (duck-typed: data, shape, stride, offset, all consistent). */
export function isTensor(x: unknown): x is StridedArray {
  return looksLikeTensor(x) && ndarrayProblem(x as never) === null;
}

function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * ndarray's view class per dtype and rank 1–3 (ndarray 1.x compiles one per pair and takes it as
 * `new View(data, shape_0 … shape_{r-1}, stride_0 … stride_{r-1}, offset)`), taken from a view that ndarray()
 * made: fromData builds a view with it directly, skipping ndarray()'s dtype lookup (a Buffer check and
 * Object.prototype.toString), ~0.3 µs of a streamed predict step's few. test/kernels.test.ts holds the views
 * equal to ndarray()'s.
 */
type View = new (data: FloatArray, ...dims: number[]) => Tensor;
const VIEWS: View[] = [];

function viewOf(data: FloatArray, rank: number): View {
  const k = rank * 2 + (data instanceof Float32Array ? 1 : 0);
  let v = VIEWS[k];
  if (v === undefined) {
    v = (ndarray(data.subarray(0, 0), new Array<number>(rank).fill(0)) as unknown as { constructor: View }).constructor;
    VIEWS[k] = v;
  }
  return v;
}

/** Wraps a typed array as a contiguous row-major tensor of the given shape (no copy). */
export function fromData(data: FloatArray, shape: readonly number[]): Tensor {
  if (data.length !== sizeOf(shape)) {
    throw new ShapeError(`fromData: data of length ${data.length} does not fill shape ${fmtShape(shape)}`);
  }
  const r = shape.length;
  if (r === 2) return new (viewOf(data, 2))(data, shape[0]!, shape[1]!, shape[1]!, 1, 0);
  if (r === 3) return new (viewOf(data, 3))(data, shape[0]!, shape[1]!, shape[2]!, shape[1]! * shape[2]!, shape[2]!, 1, 0);
  if (r === 1) return new (viewOf(data, 1))(data, shape[0]!, 1, 0);
  return ndarray(data, shape.slice()) as Tensor;
}

/** Infers the shape of a nested array, failing on ragged or non-numeric entries (named by path). */
function nestedShape(name: string, v: NestedArray): number[] {
  const shape: number[] = [];
  let cur: NestedArray = v;
  while (Array.isArray(cur)) {
    if (shape.length === 32) throw new ShapeError(`${name}: nested more than 32 levels deep (a self-referencing array?)`);
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0]!;
  }
  // Walk everything to confirm the shape is rectangular.
  const walk = (node: NestedArray, depth: number, path: string): void => {
    if (depth === shape.length) {
      if (typeof node !== "number") {
        throw new ShapeError(`${name}${path}: expected a number at depth ${depth} (shape ${fmtShape(shape)}), got ${fmtValue(node)}`);
      }
      return;
    }
    if (!Array.isArray(node)) {
      throw new ShapeError(`${name}${path}: ragged nested array: expected an array of length ${shape[depth]} at depth ${depth}, got ${fmtValue(node)}`);
    }
    if (node.length !== shape[depth]) {
      throw new ShapeError(`${name}${path}: ragged nested array: expected length ${shape[depth]} at depth ${depth}, got ${node.length}`);
    }
    for (let i = 0; i < node.length; i++) walk(node[i]!, depth + 1, `${path}[${i}]`);
  };
  walk(v, 0, "");
  return shape;
}

function fillNested(v: NestedArray, out: FloatArray, pos: { i: number }): void {
  if (typeof v === "number") {
    out[pos.i++] = v;
    return;
  }
  for (const e of v) fillNested(e, out, pos);
}

/** A numeric typed array (any but the BigInt ones): what `tensor(values, shape)` takes as flat values. */
type NumericArray = FloatArray | Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array | Uint32Array;

/**
 * Makes a contiguous tensor (a copy) from nested arrays, a typed array or another ndarray; with a shape, as in
 * TensorFlow.js's `tf.tensor(values, shape)`, from values in row-major order (flat or nested, as many as the shape
 * holds), laid out in that shape. The dtype is float64 unless given.
 *
 * @example
 * const x = tensor([[[0], [1]], [[1], [0]]]);           // shape [2, 2, 1], float64
 * const w = tensor([1, 2, 3], "float32");
 * const y = tensor([1, 2, 3, 4, 5, 6], [1, 3, 2]);      // [[[1, 2], [3, 4], [5, 6]]]
 * const z = tensor(new Float32Array(60), [2, 10, 3], "float32");
 */
export function tensor(values: TensorLike | NumericArray, shape?: readonly number[] | DType, dtype?: DType): Tensor {
  if (shape === undefined || typeof shape === "string") {
    if (dtype !== undefined) throw new ValueError(`tensor: a dtype as the second argument and another as the third (${fmtValue(shape)}, ${fmtValue(dtype)}); give tensor(values, dtype) or tensor(values, shape, dtype)`);
    return toTensor("values", values, checkDType("dtype", shape ?? DEFAULT_DTYPE));
  }
  if (!Array.isArray(shape) || shape.some((d) => typeof d !== "number" || !Number.isInteger(d) || d < 0)) {
    throw new ShapeError(`tensor shape: expected an array of non-negative integers like [2, 10, 3], got ${Array.isArray(shape) ? fmtShape(shape) : fmtValue(shape)}`);
  }
  const dt = checkDType("dtype", dtype ?? DEFAULT_DTYPE);
  const flat = ArrayBuffer.isView(values) && !(values instanceof DataView) && !(values instanceof BigInt64Array) && !(values instanceof BigUint64Array)
    ? copyTyped(values as NumericArray, dt)
    : toTensor("values", values, dt).data; // nested, flat or an ndarray: contiguous and row-major
  const n = sizeOf(shape);
  if (flat.length !== n) {
    throw new ShapeError(`tensor values: shape ${fmtShape(shape)} holds ${n} values, got ${flat.length}`);
  }
  if (ArrayBuffer.isView(values)) {
    const bad = firstNonNumber(flat);
    if (bad >= 0) throw new ValueError(`tensor values: expected numbers, got ${fmtValue(flat[bad])} at flat index ${bad}`);
  }
  return fromData(flat, shape.map(toSize));
}

/** A typed array's values as the dtype's array (a copy). */
function copyTyped(values: NumericArray, dtype: DType): FloatArray {
  const out = allocate(dtype, values.length);
  for (let k = 0; k < values.length; k++) out[k] = values[k]!;
  return out;
}

/** The index of the first value that is not a number (NaN counts as one: the model's input checks name it), or -1. */
function firstNonNumber(a: FloatArray): number {
  for (let k = 0; k < a.length; k++) if (typeof a[k] !== "number") return k;
  return -1;
}

/** `tensor` with the argument's name in its errors; used at every public boundary. */
export function toTensor(name: string, values: unknown, dtype: DType): Tensor {
  if (looksLikeTensor(values)) {
    const problem = ndarrayProblem(values as never);
    if (problem) throw new ShapeError(`${name}: a malformed ndarray: ${problem}`);
    const v = values as NdArray<any>;
    if (Array.isArray(v.data)) {
      // Generic data may hold anything; only numbers convert (a Symbol or BigInt would throw a TypeError).
      const bad = v.data.findIndex((e: unknown) => typeof e !== "number");
      if (bad >= 0) throw new ShapeError(`${name}: expected an ndarray of numbers, got ${fmtValue(v.data[bad])} at data index ${bad}`);
    }
    const src = ndarray(v.data, v.shape.slice(), v.stride.slice(), v.offset); // a real ndarray over the user's fields
    const shape = src.shape.slice();
    const out = allocate(dtype, sizeOf(shape));
    const dst = ndarray(out, shape);
    if (sizeOf(shape) > 0) {
      if (shape.length === 0) out[0] = Number(src.data[src.offset]);
      else ops.assign(dst, src);
    }
    return dst as Tensor;
  }
  if (values instanceof Float32Array || values instanceof Float64Array) {
    const out = allocate(dtype, values.length);
    out.set(values);
    return ndarray(out, [values.length]) as Tensor;
  }
  if (typeof values === "number") {
    throw new ShapeError(`${name}: expected an array or tensor, got a bare number (wrap it: [${values}])`);
  }
  if (!Array.isArray(values)) {
    throw new ShapeError(`${name}: expected a tensor or nested number arrays, got ${fmtValue(values)}`);
  }
  const shape = nestedShape(name, values as NestedArray);
  const out = allocate(dtype, sizeOf(shape));
  fillNested(values as NestedArray, out, { i: 0 });
  return ndarray(out, shape) as Tensor;
}

/**
 * A tensor of zeros.
 *
 * @example
 * const h0 = zeros([4, 10]);            // float64
 */
export function zeros(shape: number[], dtype: DType = DEFAULT_DTYPE): Tensor {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ShapeError(`shape: expected an array of non-negative integers, got ${Array.isArray(shape) ? fmtShape(shape) : fmtValue(shape)}`);
  }
  return ndarray(allocate(checkDType("dtype", dtype), sizeOf(shape)), shape.map(toSize)) as Tensor;
}

/**
 * Nested plain arrays, for printing and JSON. Works on views too (strides are honoured).
 *
 * @example
 * toArray(tensor([[1, 2], [3, 4]]));    // [[1, 2], [3, 4]]
 */
export function toArray(t: Tensor): any {
  if (!isTensor(t)) throw new ShapeError(`t: expected a tensor, got ${fmtValue(t)}`);
  const { shape, stride, offset, data } = t;
  const rec = (dim: number, off: number): NestedArray => {
    if (dim === shape.length) return data[off]!;
    const n = shape[dim]!;
    const out: NestedArray[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = rec(dim + 1, off + i * stride[dim]!);
    return out;
  };
  if (shape.length === 0) return [data[offset]!];
  return rec(0, offset);
}

/** Asserts every entry is finite; names the argument and the first bad flat index. */
export function assertFinite(name: string, data: ArrayLike<number>, shape?: readonly number[]): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v - v !== 0) {
      throw new ValueError(`${name}: expected finite values, got ${v} at ${shape ? indexOf(i, shape) : `flat index ${i}`}`);
    }
  }
}

function indexOf(flat: number, shape: readonly number[]): string {
  const idx: number[] = new Array(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = flat % shape[d]!;
    flat = Math.floor(flat / shape[d]!);
  }
  return `index ${fmtShape(idx)}`;
}
