/**
 * Losses and the accuracy metric (Keras semantics, SEMANTICS.md). Each loss is a mean over every
 * element (batch, steps, output units) and writes its gradient into `dOut` for the head's backward.
 *
 * Legend: M rows (B, or T·B for a per-step head), D output units, N = M·D elements.
 */
import type { FloatArray } from "./tensor/tensor.js";
import { exp, log, log1p } from "./tensor/math.js";
import { ValueError, fmtValue } from "./errors.js";

export type LossName = "binaryCrossentropy" | "meanSquaredError";
export const LOSSES: readonly LossName[] = ["binaryCrossentropy", "meanSquaredError"];

/** Keras's clipping constant for binary cross-entropy on probabilities. */
export const BCE_EPSILON = 1e-7;

export function checkLoss(name: string, v: unknown): LossName {
  if (LOSSES.includes(v as LossName)) return v as LossName;
  throw new ValueError(`${name}: expected one of ${LOSSES.map((s) => `"${s}"`).join(", ")}, got ${fmtValue(v)}`);
}

/**
 * Binary cross-entropy from logits, for a sigmoid head: max(z, 0) - z·y + log1p(exp(-|z|)) never
 * overflows, and its gradient w.r.t. the logit is (σ(z) - y) / N, written into dLogits.
 */
export function bceFromLogits(
  N: number,
  logits: FloatArray, // (N)
  probs: FloatArray,  // (N) σ(logits), already computed by the head
  y: FloatArray,      // (N)
  dLogits: FloatArray | null, // (N) out
): number {
  let s = 0;
  for (let k = 0; k < N; k++) {
    const z = logits[k]!, t = y[k]!;
    s += (z > 0 ? z : 0) - z * t + log1p(exp(-Math.abs(z)));
  }
  if (dLogits) {
    const inv = 1 / N;
    for (let k = 0; k < N; k++) dLogits[k] = (probs[k]! - y[k]!) * inv;
  }
  return s / N;
}

/**
 * Binary cross-entropy on probabilities (a head that is not a sigmoid), Keras-style: p is clipped to
 * [1e-7, 1 - 1e-7], and the gradient is zero where the clip is active.
 */
export function bceFromProbs(
  N: number, p: FloatArray, y: FloatArray, dP: FloatArray | null,
): number {
  let s = 0;
  const lo = BCE_EPSILON, hi = 1 - BCE_EPSILON, inv = 1 / N;
  for (let k = 0; k < N; k++) {
    const raw = p[k]!, t = y[k]!;
    const q = raw < lo ? lo : raw > hi ? hi : raw;
    s -= t * log(q) + (1 - t) * log(1 - q);
    if (dP) dP[k] = raw < lo || raw > hi ? 0 : ((1 - t) / (1 - q) - t / q) * inv;
  }
  return s / N;
}

/** Mean squared error over all N elements; dOut = 2 (out - y) / N. */
export function meanSquaredError(N: number, out: FloatArray, y: FloatArray, dOut: FloatArray | null): number {
  let s = 0;
  const k2 = 2 / N;
  for (let k = 0; k < N; k++) {
    const d = out[k]! - y[k]!;
    s += d * d;
    if (dOut) dOut[k] = d * k2;
  }
  return s / N;
}

/** Binary accuracy: the fraction of elements with y == (p > 0.5), strictly greater, as Keras. */
export function binaryAccuracy(N: number, p: FloatArray, y: FloatArray): number {
  let hit = 0;
  for (let k = 0; k < N; k++) if ((p[k]! > 0.5 ? 1 : 0) === y[k]) hit++;
  return hit / N;
}
