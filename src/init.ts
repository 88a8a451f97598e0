/**
 * Initialisers with Keras's defaults (see SEMANTICS.md), all drawing from one seeded stream so that the
 * same seed gives the same weights. Everything writes into a slice of the model's flat parameter buffer.
 */
import seedrandom from "seedrandom";
import type { FloatArray } from "./tensor/tensor.js";
import { cos2pi, log } from "./tensor/math.js";
import { ValueError, fmtValue } from "./errors.js";

export type InitializerName = "glorotUniform" | "orthogonal" | "zeros";
export const INITIALIZERS: readonly InitializerName[] = ["glorotUniform", "orthogonal", "zeros"];

export function checkInitializer(name: string, v: unknown): InitializerName {
  if (INITIALIZERS.includes(v as InitializerName)) return v as InitializerName;
  throw new ValueError(`${name}: expected one of ${INITIALIZERS.map((s) => `"${s}"`).join(", ")}, got ${fmtValue(v)}`);
}

/** A seeded uniform source in [0, 1) with a normal sampler on top; its position can be saved. */
export class Rng {
  private prng: seedrandom.PRNG;
  constructor(seed: string | number, state?: object) {
    this.prng = seedrandom(String(seed), { state: (state as any) ?? true });
  }
  /** Uniform in [0, 1), 53 bits. */
  uniform(): number {
    return this.prng.double();
  }
  /**
   * Standard normal by Box–Muller (one value per call, so the stream position is simple to reason about),
   * with math.ts's log and cos so that a seed draws the same bits in every engine.
   */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * log(u)) * cos2pi(v);
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }
  /** The generator's position, to resume the same stream later (checkpoints). */
  state(): object {
    return (this.prng as any).state();
  }
}

/** Glorot (Xavier) uniform: U(-l, l) with l = sqrt(6 / (fanIn + fanOut)); rows = fanIn, cols = fanOut. */
export function glorotUniform(out: FloatArray, off: number, rows: number, cols: number, rng: Rng): void {
  const limit = Math.sqrt(6 / (rows + cols));
  for (let i = 0; i < rows * cols; i++) out[off + i] = (2 * rng.uniform() - 1) * limit;
}

/**
 * Orthogonal (Saxe et al.), as Keras does it: A ~ N(0, 1) of shape (max(r, c), min(r, c)), A = QR,
 * Q ⊙= sign(diag R) (which makes the factorisation unique), transposed when r < c. For a recurrent
 * kernel [H, 4H] the H rows come out orthonormal. The QR is our own Householder, O(m·n²).
 */
export function orthogonal(out: FloatArray, off: number, rows: number, cols: number, rng: Rng): void {
  const m = Math.max(rows, cols), n = Math.min(rows, cols);
  const A = new Float64Array(m * n); // (m, n)
  for (let i = 0; i < m * n; i++) A[i] = rng.normal();
  const Q = householderQ(A, m, n); // (m, n), columns orthonormal, sign-fixed
  if (rows >= cols) {
    for (let i = 0; i < m * n; i++) out[off + i] = Q[i]!;
  } else {
    // out (rows = n, cols = m) = Qᵀ
    for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) out[off + i * m + j] = Q[j * n + i]!;
  }
}

/**
 * Thin Q (m, n) of A (m, n), m ≥ n, by Householder reflections, with each column j multiplied by
 * sign(R[j, j]) so that R has a non-negative diagonal. A is overwritten. Internally everything is stored
 * by columns, so every reflection is a contiguous dot product and axpy.
 */
export function householderQ(A: Float64Array, m: number, n: number): Float64Array {
  const At = new Float64Array(m * n); // (n, m): column j of A at j·m
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) At[j * m + i] = A[i * n + j]!;
  const V = new Float64Array(n * m); // (n, m): reflector k in row k, entries k … m-1
  const rDiagSign = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const ck = k * m, vk = k * m;
    let norm2 = 0;
    for (let i = k; i < m; i++) norm2 += At[ck + i]! * At[ck + i]!;
    const norm = Math.sqrt(norm2);
    if (norm === 0) { rDiagSign[k] = 1; continue; }
    const x0 = At[ck + k]!;
    const alpha = x0 >= 0 ? -norm : norm; // H x = alpha e_k, chosen away from x0 to avoid cancellation
    // v = x - alpha e_k, normalised
    let vnorm2 = 0;
    for (let i = k; i < m; i++) {
      const v = At[ck + i]! - (i === k ? alpha : 0);
      V[vk + i] = v;
      vnorm2 += v * v;
    }
    const inv = 1 / Math.sqrt(vnorm2);
    for (let i = k; i < m; i++) V[vk + i] = V[vk + i]! * inv;
    // A[k:, j] -= 2 v (vᵀ A[k:, j]) for the remaining columns
    for (let j = k; j < n; j++) {
      const cj = j * m;
      let s = 0;
      for (let i = k; i < m; i++) s += V[vk + i]! * At[cj + i]!;
      s *= 2;
      for (let i = k; i < m; i++) At[cj + i] = At[cj + i]! - s * V[vk + i]!;
    }
    rDiagSign[k] = alpha >= 0 ? 1 : -1;
  }
  // Q = H_0 H_1 … H_{n-1} I[:, :n], applied from the last reflector back, column by column.
  const Qt = new Float64Array(n * m); // (n, m): column j of Q at j·m
  for (let j = 0; j < n; j++) Qt[j * m + j] = 1;
  for (let k = n - 1; k >= 0; k--) {
    const vk = k * m;
    for (let j = 0; j < n; j++) {
      const cj = j * m;
      let s = 0;
      for (let i = k; i < m; i++) s += V[vk + i]! * Qt[cj + i]!;
      if (s === 0) continue;
      s *= 2;
      for (let i = k; i < m; i++) Qt[cj + i] = Qt[cj + i]! - s * V[vk + i]!;
    }
  }
  const Q = new Float64Array(m * n);
  for (let j = 0; j < n; j++) {
    const sg = rDiagSign[j]!;
    for (let i = 0; i < m; i++) Q[i * n + j] = Qt[j * m + i]! * sg;
  }
  return Q;
}

export function initialize(
  name: InitializerName, out: FloatArray, off: number, rows: number, cols: number, rng: Rng,
): void {
  if (name === "glorotUniform") glorotUniform(out, off, rows, cols, rng);
  else if (name === "orthogonal") orthogonal(out, off, rows, cols, rng);
  else out.fill(0, off, off + rows * cols);
}
