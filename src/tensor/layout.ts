/**
 * Moving data between the public batch-major layout [B, T, C] (any strides: user ndarrays are read in
 * place) and the engine's time-major buffers (T, B, C), plus validation scans. With tensor.ts, the only
 * place that reads ndarray internals (data, stride, offset).
 *
 * Legend: B batch rows, T (or n) steps, C channels (features, units or labels).
 */
import { type FloatArray, type StridedArray, type Tensor, fromData } from "./tensor.js";
import { ValueError, fmtShape } from "../errors.js";

/**
 * Copies steps [tx, tx + n) of B rows of x [N, T, C] into dst, time-major: step t, row b at
 * dstOff + (t·B + b)·C. Row b is sample rows[rowStart + b] when a row map is given (shuffled batches),
 * else rowStart + b.
 */
export function gatherSteps(
  x: StridedArray, rows: Int32Array | null, rowStart: number, B: number, tx: number, n: number,
  dst: FloatArray, dstOff: number, // (n, B, C)
): void {
  const d = x.data, C = x.shape[2]!;
  const sb = x.stride[0]!, st = x.stride[1]!, sc = x.stride[2]!;
  for (let t = 0; t < n; t++) {
    const to = dstOff + t * B * C;
    for (let b = 0; b < B; b++) {
      const r = rows ? rows[rowStart + b]! : rowStart + b;
      const src = x.offset + r * sb + (tx + t) * st;
      const o = to + b * C;
      for (let c = 0; c < C; c++) dst[o + c] = d[src + c * sc];
    }
  }
}

/** Copies B rows of y [N, C] into dst (B, C), through the row map when given. */
export function gatherRows(
  y: StridedArray, rows: Int32Array | null, rowStart: number, B: number,
  dst: FloatArray, dstOff: number, // (B, C)
): void {
  const d = y.data, C = y.shape[1]!, sb = y.stride[0]!, sc = y.stride[1]!;
  for (let b = 0; b < B; b++) {
    const r = rows ? rows[rowStart + b]! : rowStart + b;
    for (let c = 0; c < C; c++) dst[dstOff + b * C + c] = d[y.offset + r * sb + c * sc];
  }
}

/**
 * Copies n samples of x ([N, C] or [N, T, C], any strides) into dst, dense and batch-major: sample b is
 * x's row rows[r0 + b] when a row map is given, else r0 + b.
 */
export function gatherSamples(x: StridedArray, rows: Int32Array | null, r0: number, n: number, dst: FloatArray): void {
  const d = x.data, rank = x.shape.length;
  const T = rank === 3 ? x.shape[1]! : 1, C = x.shape[rank - 1]!;
  const sb = x.stride[0]!, st = rank === 3 ? x.stride[1]! : 0, sc = x.stride[rank - 1]!;
  if (sc === 1 && (rank === 2 || st === C) && ArrayBuffer.isView(d)) {
    // Each sample's T·C values lie in one run: one block copy per sample (a memcpy when the dtypes match),
    // ~10× faster than the loop below. It runs on the calling thread before the workers start.
    const run = T * C, td = d as FloatArray;
    for (let b = 0; b < n; b++) {
      const src = x.offset + (rows ? rows[r0 + b]! : r0 + b) * sb;
      dst.set(td.subarray(src, src + run), b * run);
    }
    return;
  }
  for (let b = 0; b < n; b++) {
    const r = rows ? rows[r0 + b]! : r0 + b;
    for (let t = 0; t < T; t++) {
      const src = x.offset + r * sb + t * st, o = (b * T + t) * C;
      for (let c = 0; c < C; c++) dst[o + c] = d[src + c * sc];
    }
  }
}

/** Transposes time-major src (n, B, C) into batch-major dst (B, n, C), scaling by `scale`. */
export function timeToBatchMajor(
  n: number, B: number, C: number,
  src: FloatArray, srcOff: number, // (n, B, C)
  dst: FloatArray, dstOff: number, // (B, n, C)
  scale = 1,
): void {
  for (let t = 0; t < n; t++) {
    for (let b = 0; b < B; b++) {
      const s = srcOff + (t * B + b) * C, o = dstOff + (b * n + t) * C;
      for (let c = 0; c < C; c++) dst[o + c] = src[s + c]! * scale;
    }
  }
}

/** True when t's entries lie in its data in row-major order from offset 0 with nothing else around. */
function isDense(t: StridedArray): boolean {
  let s = 1;
  for (let d = t.shape.length - 1; d >= 0; d--) {
    if (t.shape[d] !== 1 && t.stride[d] !== s) return false;
    s *= t.shape[d]!;
  }
  return t.offset === 0 && t.data.length === s;
}

/** The multi-index of the flat position `flat` in a row-major shape. */
function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = flat % shape[d]!;
    flat = Math.floor(flat / shape[d]!);
  }
  return idx;
}

/**
 * The first index of a[0 … n) whose value is not finite, or -1. Eight values at a time: their v·0 add up to 0
 * when all are finite and to NaN otherwise, one test per eight; the block that fails is then searched value by
 * value. There are two copies, one per array type, because V8 compiles each for the array types it has seen:
 * measured at S4's input (819,200 float32 values), one function seeing both types took 1.0–1.8 ms, a copy
 * seeing one 0.6–0.9 ms, and the per-value loop below (that plain arrays take) 2.5–4.5 ms.
 */
function firstNonFinite32(a: Float32Array, n: number): number {
  let k = 0;
  for (; k + 8 <= n; k += 8) {
    if ((a[k]! * 0 + a[k + 1]! * 0) + (a[k + 2]! * 0 + a[k + 3]! * 0) + ((a[k + 4]! * 0 + a[k + 5]! * 0) + (a[k + 6]! * 0 + a[k + 7]! * 0)) !== 0) break;
  }
  for (; k < n; k++) if (a[k]! - a[k]! !== 0) return k;
  return -1;
}

/** firstNonFinite32 for float64 arrays (the same code: see there why it is written twice). */
function firstNonFinite64(a: Float64Array, n: number): number {
  let k = 0;
  for (; k + 8 <= n; k += 8) {
    if ((a[k]! * 0 + a[k + 1]! * 0) + (a[k + 2]! * 0 + a[k + 3]! * 0) + ((a[k + 4]! * 0 + a[k + 5]! * 0) + (a[k + 6]! * 0 + a[k + 7]! * 0)) !== 0) break;
  }
  for (; k < n; k++) if (a[k]! - a[k]! !== 0) return k;
  return -1;
}

/**
 * Throws ValueError naming `name` and the first index whose value is not a finite number, or, with
 * `lo`/`hi`, lies outside [lo, hi] (`what` describes the range in the message). Plain loops, no
 * per-element callback, so a scan allocates nothing.
 */
export function assertFiniteIn(name: string, t: StridedArray, lo = -Infinity, hi = Infinity, what = ""): void {
  const { shape, stride, offset, data } = t;
  const total = shape.reduce((a: number, b: number) => a * b, 1);
  let badAt: number[] | null = null, value: unknown;
  if (lo === -Infinity && hi === Infinity && isDense(t) && (data instanceof Float32Array || data instanceof Float64Array)) {
    // A model's inputs, the common case: every step checks all B·T·F of them on the calling thread.
    const k = data instanceof Float32Array ? firstNonFinite32(data, total) : firstNonFinite64(data, total);
    if (k >= 0) { badAt = unravel(k, shape); value = data[k]; }
  } else if (isDense(t)) {
    for (let k = 0; k < total; k++) {
      const v = data[k];
      if (typeof v !== "number" || v - v !== 0 || v < lo || v > hi) { badAt = unravel(k, shape); value = v; break; }
    }
  } else {
    const idx = new Array<number>(shape.length).fill(0);
    for (let k = 0; k < total; k++) {
      let o = offset;
      for (let d = 0; d < shape.length; d++) o += idx[d]! * stride[d]!;
      const v = data[o];
      if (typeof v !== "number" || v - v !== 0 || v < lo || v > hi) { badAt = idx; value = v; break; }
      for (let d = shape.length - 1; d >= 0; d--) {
        if (++idx[d]! < shape[d]!) break;
        idx[d] = 0;
      }
    }
  }
  if (!badAt) return;
  const finite = typeof value === "number" && value - value === 0;
  if (!finite || !what) throw new ValueError(`${name}: expected finite values, got ${String(value)} at index ${fmtShape(badAt)}`);
  throw new ValueError(`${name}: ${what}, got ${String(value)} at index ${fmtShape(badAt)}`);
}

/** Per (row, step) Euclidean norms over the last axis of a time-major (T, B, H) buffer, as a [B, T] tensor. */
export function rowNorms(a: FloatArray, B: number, T: number, H: number): Tensor {
  const out = new Float64Array(B * T);
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) {
      let s = 0;
      const o = (t * B + b) * H;
      for (let j = 0; j < H; j++) s += a[o + j]! * a[o + j]!;
      out[b * T + t] = Math.sqrt(s);
    }
  }
  return fromData(out, [B, T]);
}

