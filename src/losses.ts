/**
 * Losses and the accuracy metric (Keras semantics, SEMANTICS.md): binary and categorical cross-entropy, mean
 * squared and mean absolute error, Huber. Each loss is a mean over every
 * element (batch, steps, output units) and writes its gradient into `dOut` for the head's backward.
 *
 * Legend: M rows (B, or T·B for a per-step head), D output units, N = M·D elements.
 */
import type { FloatArray } from "./tensor/tensor.js";
import { exp, log, log1p } from "./tensor/math.js";
import { ValueError, checkKeys, fmtValue } from "./errors.js";

export type LossName =
  | "binaryCrossentropy" | "meanSquaredError" | "meanAbsoluteError" | "huber" | "categoricalCrossentropy" | "sparseCategoricalCrossentropy";
export const LOSSES: readonly LossName[] = [
  "binaryCrossentropy", "meanSquaredError", "meanAbsoluteError", "huber", "categoricalCrossentropy", "sparseCategoricalCrossentropy",
];

/** Keras's other spellings of the losses (its snake_case names and short forms), accepted by compile. */
export type LossAlias =
  | "binary_crossentropy" | "bce" | "mean_squared_error" | "mse" | "mean_absolute_error" | "mae" | "huber_loss"
  | "categorical_crossentropy" | "sparse_categorical_crossentropy";
export const LOSS_ALIASES: Readonly<Record<LossAlias, LossName>> = {
  binary_crossentropy: "binaryCrossentropy", bce: "binaryCrossentropy",
  mean_squared_error: "meanSquaredError", mse: "meanSquaredError",
  mean_absolute_error: "meanAbsoluteError", mae: "meanAbsoluteError", huber_loss: "huber",
  categorical_crossentropy: "categoricalCrossentropy",
  sparse_categorical_crossentropy: "sparseCategoricalCrossentropy",
};

/** The metrics compile takes: accuracy, and Keras's mean absolute and mean squared error of the output. */
export type MetricName = "accuracy" | "mae" | "mse";
export const METRICS: readonly MetricName[] = ["accuracy", "mae", "mse"];
/** Keras's longer names of the error metrics. */
const METRIC_ALIASES: Readonly<Record<string, MetricName>> = { mean_absolute_error: "mae", mean_squared_error: "mse", acc: "accuracy" };

/** compile's `metrics`: each a name or Keras alias, no repeats; in canonical names. */
export function checkMetrics(name: string, v: unknown, loss: LossName): MetricName[] {
  if (!Array.isArray(v)) throw new ValueError(`${name}: expected an array of "accuracy", "mae", "mse", got ${fmtValue(v)}`);
  const out: MetricName[] = [];
  v.forEach((m, i) => {
    const k = METRICS.includes(m as MetricName) ? (m as MetricName) : typeof m === "string" && Object.hasOwn(METRIC_ALIASES, m) ? METRIC_ALIASES[m]! : null;
    if (k === null) throw new ValueError(`${name}[${i}]: expected one of "accuracy", "mae", "mse" (or "mean_absolute_error", "mean_squared_error"), got ${fmtValue(m)}`);
    if (out.includes(k)) throw new ValueError(`${name}[${i}]: ${JSON.stringify(k)} is given twice`);
    if (k !== "accuracy" && loss === "sparseCategoricalCrossentropy") {
      throw new ValueError(`${name}[${i}]: ${k} compares the output with labels of its shape, and sparseCategoricalCrossentropy's labels are class indices; use categoricalCrossentropy with one-hot labels, or "accuracy"`);
    }
    out.push(k);
  });
  return out;
}

/** Huber's delta when none is given (Keras's and PyTorch's default). */
export const HUBER_DELTA = 1;

/** Keras's clipping constant for binary cross-entropy on probabilities. */
export const BCE_EPSILON = 1e-7;

/** The loss a name (or a Keras alias) means. */
export function checkLoss(name: string, v: unknown): LossName {
  if (LOSSES.includes(v as LossName)) return v as LossName;
  if (typeof v === "string" && Object.hasOwn(LOSS_ALIASES, v)) return LOSS_ALIASES[v as LossAlias];
  throw new ValueError(`${name}: expected one of ${LOSSES.map((s) => `"${s}"`).join(", ")} (or a Keras alias: ${Object.keys(LOSS_ALIASES).map((s) => `"${s}"`).join(", ")}), got ${fmtValue(v)}`);
}

/** compile's `loss`: a name (or alias), or Huber with its delta. */
export function lossOption(v: unknown): { loss: LossName; delta: number } {
  if (typeof v === "object" && v !== null && !Array.isArray(v)) {
    checkKeys("compile loss", v, ["name", "delta"]);
    const o = v as { name?: unknown; delta?: unknown };
    if (checkLoss("compile loss.name", o.name) !== "huber") {
      throw new ValueError(`compile loss: only "huber" takes options ({ name: "huber", delta }); give ${JSON.stringify(o.name)} by its name alone`);
    }
    return { loss: "huber", delta: o.delta === undefined ? HUBER_DELTA : checkHuberDelta("compile loss.delta", o.delta) };
  }
  return { loss: checkLoss("compile loss", v), delta: HUBER_DELTA };
}

/** Whether the loss compares a softmax over classes with class labels (one-hot or indices). */
export function isCategorical(loss: LossName | null): boolean {
  return loss === "categoricalCrossentropy" || loss === "sparseCategoricalCrossentropy";
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
  valid: Uint8Array | null = null, D = 1, // rows of D elements to count (masking); null: all
): number {
  const n = counted(N, valid, D), inv = 1 / n;
  let s = 0;
  for (let k = 0; k < N; k++) {
    if (valid && !valid[(k / D) | 0]) { if (dLogits) dLogits[k] = 0; continue; }
    const z = logits[k]!, t = y[k]!;
    s += (z > 0 ? z : 0) - z * t + log1p(exp(-Math.abs(z)));
    if (dLogits) dLogits[k] = (probs[k]! - t) * inv;
  }
  return n ? s / n : 0;
}

/**
 * How many of the N elements (rows of D) a loss averages over: all, or with masking the rows of kept steps.
 * Keras 3 divides by the same count (it also adds 1e-7, which we do not: SEMANTICS.md).
 */
function counted(N: number, valid: Uint8Array | null, D: number): number {
  if (!valid) return N;
  let rows = 0;
  for (let r = 0; r < N / D; r++) rows += valid[r]!;
  return rows * D;
}

/**
 * Binary cross-entropy on probabilities (a head that is not a sigmoid), Keras-style: p is clipped to
 * [1e-7, 1 - 1e-7], and the gradient is zero where the clip is active.
 */
export function bceFromProbs(
  N: number, p: FloatArray, y: FloatArray, dP: FloatArray | null, valid: Uint8Array | null = null, D = 1,
): number {
  let s = 0;
  const n = counted(N, valid, D), lo = BCE_EPSILON, hi = 1 - BCE_EPSILON, inv = 1 / n;
  for (let k = 0; k < N; k++) {
    if (valid && !valid[(k / D) | 0]) { if (dP) dP[k] = 0; continue; }
    const raw = p[k]!, t = y[k]!;
    const q = raw < lo ? lo : raw > hi ? hi : raw;
    s -= t * log(q) + (1 - t) * log(1 - q);
    if (dP) dP[k] = raw < lo || raw > hi ? 0 : ((1 - t) / (1 - q) - t / q) * inv;
  }
  return n ? s / n : 0;
}

/** Mean squared error over all N elements; dOut = 2 (out - y) / N. */
export function meanSquaredError(
  N: number, out: FloatArray, y: FloatArray, dOut: FloatArray | null, valid: Uint8Array | null = null, D = 1,
): number {
  let s = 0;
  const n = counted(N, valid, D), k2 = 2 / n;
  for (let k = 0; k < N; k++) {
    if (valid && !valid[(k / D) | 0]) { if (dOut) dOut[k] = 0; continue; }
    const d = out[k]! - y[k]!;
    s += d * d;
    if (dOut) dOut[k] = d * k2;
  }
  return n ? s / n : 0;
}

/**
 * Mean absolute error over all N elements (Keras's and PyTorch's L1 loss); dOut = sign(out − y) / N, 0 where they
 * are equal (the subgradient both take there).
 */
export function meanAbsoluteError(
  N: number, out: FloatArray, y: FloatArray, dOut: FloatArray | null, valid: Uint8Array | null = null, D = 1,
): number {
  let s = 0;
  const n = counted(N, valid, D), inv = 1 / n;
  for (let k = 0; k < N; k++) {
    if (valid && !valid[(k / D) | 0]) { if (dOut) dOut[k] = 0; continue; }
    const d = out[k]! - y[k]!;
    s += Math.abs(d);
    if (dOut) dOut[k] = d > 0 ? inv : d < 0 ? -inv : 0;
  }
  return n ? s / n : 0;
}

/**
 * Huber loss over all N elements (Keras's `Huber(delta)`, PyTorch's `HuberLoss(delta)`: the same formula): per
 * element ½d² where |d| ≤ δ, else δ·(|d| − ½δ), d = out − y; dOut = d / N inside, δ·sign(d) / N outside.
 */
export function huber(
  N: number, out: FloatArray, y: FloatArray, dOut: FloatArray | null, valid: Uint8Array | null = null, D = 1, delta = HUBER_DELTA,
): number {
  let s = 0;
  const n = counted(N, valid, D), inv = 1 / n;
  for (let k = 0; k < N; k++) {
    if (valid && !valid[(k / D) | 0]) { if (dOut) dOut[k] = 0; continue; }
    const d = out[k]! - y[k]!, a = Math.abs(d);
    if (a <= delta) {
      s += 0.5 * d * d;
      if (dOut) dOut[k] = d * inv;
    } else {
      s += delta * (a - 0.5 * delta);
      if (dOut) dOut[k] = (d > 0 ? delta : -delta) * inv;
    }
  }
  return n ? s / n : 0;
}

/** A Huber delta: a positive finite number. */
export function checkHuberDelta(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new ValueError(`${name}: expected a positive finite number, got ${fmtValue(v)}`);
  return v;
}

/** Binary accuracy: the fraction of elements with y == (p > 0.5), strictly greater, as Keras. */
export function binaryAccuracy(N: number, p: FloatArray, y: FloatArray, valid: Uint8Array | null = null, D = 1): number {
  let hit = 0;
  for (let k = 0; k < N; k++) if ((!valid || valid[(k / D) | 0]) && (p[k]! > 0.5 ? 1 : 0) === y[k]) hit++;
  const n = counted(N, valid, D);
  return n ? hit / n : 0;
}

/**
 * Categorical cross-entropy of a softmax head, from its logits: per row, log Σ exp(z) by log-sum-exp (the
 * largest logit subtracted first, so nothing overflows), loss = Σ_k y_k (lse − z_k) = −Σ y log p. Labels are
 * D values per row (one-hot or soft), or with `sparse` one class index per row. The gradient w.r.t. the logits
 * is (Σy·p − y) / M (p − onehot for one-hot and sparse labels), written into dLogits; the loss is the mean
 * over the M rows.
 */
export function softmaxCrossentropy(
  M: number, D: number,
  logits: FloatArray, // (M, D)
  probs: FloatArray,  // (M, D) the head's softmax, already computed
  y: FloatArray,      // (M, D), or (M) class indices when sparse
  sparse: boolean,
  dLogits: FloatArray | null, // (M, D) out
  valid: Uint8Array | null = null, // (M) rows to count (masking); null: all
): number {
  let s = 0;
  const rows = counted(M, valid, 1), inv = 1 / rows;
  for (let r = 0; r < M; r++) {
    const o = r * D;
    if (valid && !valid[r]) { if (dLogits) dLogits.fill(0, o, o + D); continue; }
    let max = logits[o]!;
    for (let k = 1; k < D; k++) if (logits[o + k]! > max) max = logits[o + k]!;
    let sum = 0;
    for (let k = 0; k < D; k++) sum += exp(logits[o + k]! - max);
    const lse = max + log(sum);
    if (sparse) {
      const c = y[r]!;
      s += lse - logits[o + c]!;
      if (dLogits) {
        for (let k = 0; k < D; k++) dLogits[o + k] = probs[o + k]! * inv;
        dLogits[o + c] = dLogits[o + c]! - inv;
      }
    } else {
      let ysum = 0;
      for (let k = 0; k < D; k++) { const t = y[o + k]!; s += t * (lse - logits[o + k]!); ysum += t; }
      if (dLogits) for (let k = 0; k < D; k++) dLogits[o + k] = (ysum * probs[o + k]! - y[o + k]!) * inv;
    }
  }
  return rows ? s * inv : 0;
}

/** Categorical accuracy: the fraction of the M rows whose largest p (the first, on ties) is the label's class. */
export function categoricalAccuracy(M: number, D: number, p: FloatArray, y: FloatArray, sparse: boolean, valid: Uint8Array | null = null): number {
  let hit = 0;
  for (let r = 0; r < M; r++) {
    if (valid && !valid[r]) continue;
    const o = r * D;
    let best = 0, yBest = 0;
    for (let k = 1; k < D; k++) if (p[o + k]! > p[o + best]!) best = k;
    if (sparse) yBest = y[r]!;
    else for (let k = 1; k < D; k++) if (y[o + k]! > y[o + yBest]!) yBest = k;
    if (best === yBest) hit++;
  }
  const rows = counted(M, valid, 1);
  return rows ? hit / rows : 0;
}
