/**
 * Data preparation: the Keras stateful-LSTM tutorial's windowing of sequences.
 */
import { type Tensor, type TensorLike, type DType, DEFAULT_DTYPE, allocate, checkDType, fromData, toTensor } from "./tensor/tensor.js";
import { ShapeError, ValueError, fmtShape, fmtValue } from "./errors.js";

/**
 * Cuts every sequence into windows of `windowLength` steps, starting every `increment` steps
 * (increment = windowLength: non-overlapping, the tutorial's split; increment = 1: sliding). Windows of a
 * sequence stay together and in order, so a stateful model with batch size 1 sees them one after another.
 *
 * - x: [N, T] (one feature) or [N, T, F] → windows [N·W, windowLength, F], W = ⌊(T - windowLength) / increment⌋ + 1
 * - y: [N] or [N, D] (a label per sequence, repeated for each window) → [N·W, D];
 *      or [N, T, D] (per step) → the windows of y, [N·W, windowLength, D]
 *
 * @example
 * const [xw, yw] = prepareSequences(x, y, 10, 10);   // 20-step sequences → 2 windows each
 * const [xs, ys] = prepareSequences(x, y, 10, 1);    // → 11 sliding windows each
 */
export function prepareSequences(
  x: TensorLike, y: TensorLike, windowLength: number, increment: number, dtype: DType = DEFAULT_DTYPE,
): [Tensor, Tensor] {
  checkDType("prepareSequences dtype", dtype);
  if (typeof windowLength !== "number" || !Number.isInteger(windowLength) || windowLength <= 0) {
    throw new ValueError(`prepareSequences windowLength: expected a positive integer, got ${fmtValue(windowLength)}`);
  }
  if (typeof increment !== "number" || !Number.isInteger(increment) || increment <= 0) {
    throw new ValueError(`prepareSequences increment: expected a positive integer, got ${fmtValue(increment)}`);
  }
  let xt = toTensor("prepareSequences x", x, dtype);
  if (xt.shape.length === 2) xt = fromData(xt.data, [xt.shape[0]!, xt.shape[1]!, 1]);
  if (xt.shape.length !== 3) {
    throw new ShapeError(`prepareSequences x: expected rank 2 [N, T] or rank 3 [N, T, F], got shape ${fmtShape(xt.shape)}`);
  }
  const [N, T, F] = xt.shape as [number, number, number];
  if (N === 0 || T === 0 || F === 0) throw new ShapeError(`prepareSequences x: expected a non-empty [N, T, F], got ${fmtShape(xt.shape)}`);
  if (windowLength > T) {
    throw new ValueError(`prepareSequences windowLength: expected at most the sequence length ${T}, got ${windowLength}`);
  }
  let yt = toTensor("prepareSequences y", y, dtype);
  if (yt.shape.length === 1) yt = fromData(yt.data, [yt.shape[0]!, 1]);
  const perStep = yt.shape.length === 3;
  if (yt.shape[0] !== N || (yt.shape.length !== 2 && !perStep) || (perStep && yt.shape[1] !== T)) {
    throw new ShapeError(`prepareSequences y: expected [N] or [N, D] or [N, T, D] with N = ${N}, T = ${T}, got ${fmtShape(yt.shape)}`);
  }
  for (const [nm, t] of [["x", xt], ["y", yt]] as const) {
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i]!)) throw new ValueError(`prepareSequences ${nm}: expected finite values, got ${t.data[i]} at flat index ${i}`);
    }
  }
  const D = yt.shape[yt.shape.length - 1]!;
  const W = Math.floor((T - windowLength) / increment) + 1;
  const xo = allocate(dtype, N * W * windowLength * F);
  const yo = allocate(dtype, N * W * (perStep ? windowLength : 1) * D);
  let wi = 0;
  for (let n = 0; n < N; n++) {
    for (let w = 0; w < W; w++, wi++) {
      const start = w * increment;
      xo.set(xt.data.subarray((n * T + start) * F, (n * T + start + windowLength) * F), wi * windowLength * F);
      if (perStep) yo.set(yt.data.subarray((n * T + start) * D, (n * T + start + windowLength) * D), wi * windowLength * D);
      else yo.set(yt.data.subarray(n * D, (n + 1) * D), wi * D);
    }
  }
  return [
    fromData(xo, [N * W, windowLength, F]),
    fromData(yo, perStep ? [N * W, windowLength, D] : [N * W, D]),
  ];
}
