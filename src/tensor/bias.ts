/**
 * The bias kernels on raw typed arrays, and clear: a bias added to every row of a product (z = x·W + bias, a
 * Dense layer's y), its gradient summed over the rows (dBias), and a buffer zeroed (a step zeroes its gradients).
 * Each runs the SIMD kernel when its arrays live in a model's WebAssembly memory, else its TypeScript loop.
 *
 * Legend: Y, dY (M, N) are (array, offset, leading dimension); bias, dBias (N) are (array, offset).
 */
import type { FloatArray } from "./tensor.js";
import * as arenas from "../wasm/arena.js";

/** Y (M, N) += bias (N) on every row. */
export function addBiasRows(
  M: number, N: number,
  Y: FloatArray, yOff: number, ldy: number, // (M, N)
  bias: FloatArray, bOff: number,           // (N)
): void {
  // The SIMD backend: the same additions two (float64) or four (float32) columns at a time (src/wasm/gates.ts), bit for bit.
  if (arenas.anyArena && (N & 1) === 0 && M > 0) {
    const simd = arenas.biasFor(Y, bias, false), w = Y.BYTES_PER_ELEMENT;
    if (simd) { simd(M, N, arenas.at[0]! + w * yOff, ldy, arenas.at[1]! + w * bOff); return; }
  }
  addBiasLoop(M, N, Y, yOff, ldy, bias, bOff);
}

/** addBiasRows' TypeScript loop, in a function of its own for the reason gatesForwardLoop gives (lstm-gates.ts). */
function addBiasLoop(M: number, N: number, Y: FloatArray, yOff: number, ldy: number, bias: FloatArray, bOff: number): void {
  let i = 0;
  // Four rows per pass: each bias value is loaded once for four updates.
  for (; i + 3 < M; i += 4) {
    const y0 = yOff + i * ldy, y1 = y0 + ldy, y2 = y1 + ldy, y3 = y2 + ldy;
    for (let j = 0; j < N; j++) {
      const v = bias[bOff + j]!;
      Y[y0 + j] = Y[y0 + j]! + v;
      Y[y1 + j] = Y[y1 + j]! + v;
      Y[y2 + j] = Y[y2 + j]! + v;
      Y[y3 + j] = Y[y3 + j]! + v;
    }
  }
  for (; i < M; i++) {
    const yi = yOff + i * ldy;
    for (let j = 0; j < N; j++) Y[yi + j] = Y[yi + j]! + bias[bOff + j]!;
  }
}

/** dBias (N) += column sums of dY (M, N): the bias gradient. */
export function sumRowsInto(
  M: number, N: number,
  dY: FloatArray, yOff: number, ldy: number, // (M, N)
  dBias: FloatArray, bOff: number,           // (N)
): void {
  // The SIMD backend: the same sums in the same order, two columns at a time in float64 (bit for bit), four in
  // float32 arithmetic (rounding at each addition, where this loop rounds at the store) (src/wasm/gates.ts).
  if (arenas.anyArena && (N & 1) === 0 && M > 0) {
    const simd = arenas.biasFor(dY, dBias, true), w = dY.BYTES_PER_ELEMENT;
    if (simd) { simd(M, N, arenas.at[0]! + w * yOff, ldy, arenas.at[1]! + w * bOff); return; }
  }
  sumRowsLoop(M, N, dY, yOff, ldy, dBias, bOff);
}

/** sumRowsInto's TypeScript loop, in a function of its own for the reason gatesForwardLoop gives (lstm-gates.ts). */
function sumRowsLoop(M: number, N: number, dY: FloatArray, yOff: number, ldy: number, dBias: FloatArray, bOff: number): void {
  let i = 0;
  // Four rows per pass: dBias is read and written once per four rows.
  for (; i + 3 < M; i += 4) {
    const y0 = yOff + i * ldy, y1 = y0 + ldy, y2 = y1 + ldy, y3 = y2 + ldy;
    for (let j = 0; j < N; j++) {
      dBias[bOff + j] = dBias[bOff + j]! + ((dY[y0 + j]! + dY[y1 + j]!) + (dY[y2 + j]! + dY[y3 + j]!));
    }
  }
  for (; i < M; i++) {
    const yi = yOff + i * ldy;
    for (let j = 0; j < N; j++) dBias[bOff + j] = dBias[bOff + j]! + dY[yi + j]!;
  }
}

/**
 * x.fill(0), in SIMD when x lives in a model's WebAssembly memory: there TypedArray.fill is ~5× slower than on
 * an ordinary array (0.4 against 0.07 µs for the seed model's 491 gradients), and a step zeroes its gradients.
 */
export function clear(x: FloatArray): void {
  const k = arenas.anyArena ? arenas.zeroFor(x) : null;
  if (k) k(x.length * x.BYTES_PER_ELEMENT, arenas.at[0]!);
  else x.fill(0);
}

/** x[off, off + n) = 0: `clear` on part of x. */
export function clearRange(x: FloatArray, off: number, n: number): void {
  const k = arenas.anyArena && n >= COPY_IN_SIMD ? arenas.zeroFor(x) : null; // below, fill costs what the call does
  const w = x.BYTES_PER_ELEMENT;
  if (k) k(n * w, arenas.at[0]! + off * w);
  else x.fill(0, off, off + n);
}

/** The copies from this many values on run in SIMD (see copyRange). */
export const COPY_IN_SIMD = 32;

/**
 * dst[dOff, dOff + n) = src[sOff, sOff + n) (the two ranges apart), in SIMD when both live in one model's
 * WebAssembly memory, where a loop or TypedArray.set is several times slower than on ordinary arrays (see update.ts's
 * copy): a stateful model's states go in and out of its slots this way at every call.
 */
export function copyRange(dst: FloatArray, dOff: number, src: FloatArray, sOff: number, n: number): void {
  // Below ~32 values the loop costs what the lookups and the call into WebAssembly do (an LSTM(10)'s state).
  const k = arenas.anyArena && n >= COPY_IN_SIMD ? arenas.copyFor(dst, src) : null;
  const w = dst.BYTES_PER_ELEMENT;
  if (k) k(n * w, arenas.at[0]! + dOff * w, arenas.at[1]! + sOff * w);
  else for (let i = 0; i < n; i++) dst[dOff + i] = src[sOff + i]!;
}
