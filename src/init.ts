/**
 * Initialisers with Keras's defaults (see SEMANTICS.md), all drawing from one seeded stream so that the
 * same seed gives the same weights. Everything writes into a slice of the model's flat parameter buffer.
 */
import seedrandom from "seedrandom";
import type { FloatArray } from "./tensor/tensor.js";
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
  /** Standard normal by Box–Muller (one value per call, so the stream position is simple to reason about). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
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
 * sign(R[j, j]) so that R has a non-negative diagonal. A is overwritten.
 */
export function householderQ(A: Float64Array, m: number, n: number): Float64Array {
  const V = new Float64Array(m * n); // column k holds reflector k (entries k..m-1), stored (m, n)
  const rDiagSign = new Float64Array(n);
  const w = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let norm2 = 0;
    for (let i = k; i < m; i++) norm2 += A[i * n + k]! ** 2;
    const norm = Math.sqrt(norm2);
    const x0 = A[k * n + k]!;
    if (norm === 0) { rDiagSign[k] = 1; continue; }
    const alpha = x0 >= 0 ? -norm : norm; // H x = alpha e_k, chosen away from x0 to avoid cancellation
    // v = x - alpha e_k, normalised
    let vnorm2 = 0;
    for (let i = k; i < m; i++) {
      const v = A[i * n + k]! - (i === k ? alpha : 0);
      V[i * n + k] = v;
      vnorm2 += v * v;
    }
    const vnorm = Math.sqrt(vnorm2);
    for (let i = k; i < m; i++) V[i * n + k] = V[i * n + k]! / vnorm;
    // A[k:, k:] -= 2 v (vᵀ A[k:, k:])
    for (let j = k; j < n; j++) {
      let s = 0;
      for (let i = k; i < m; i++) s += V[i * n + k]! * A[i * n + j]!;
      w[j] = s;
    }
    for (let i = k; i < m; i++) {
      const vi = 2 * V[i * n + k]!;
      for (let j = k; j < n; j++) A[i * n + j] = A[i * n + j]! - vi * w[j]!;
    }
    rDiagSign[k] = alpha >= 0 ? 1 : -1;
  }
  // Q = H_0 H_1 … H_{n-1} I[:, :n], applied from the last reflector back.
  const Q = new Float64Array(m * n);
  for (let j = 0; j < n; j++) Q[j * n + j] = 1;
  for (let k = n - 1; k >= 0; k--) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = k; i < m; i++) s += V[i * n + k]! * Q[i * n + j]!;
      w[j] = s;
    }
    for (let i = k; i < m; i++) {
      const vi = 2 * V[i * n + k]!;
      if (vi === 0) continue;
      for (let j = 0; j < n; j++) Q[i * n + j] = Q[i * n + j]! - vi * w[j]!;
    }
  }
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) Q[i * n + j] = Q[i * n + j]! * rDiagSign[j]!;
  return Q;
}

export function initialize(
  name: InitializerName, out: FloatArray, off: number, rows: number, cols: number, rng: Rng,
): void {
  if (name === "glorotUniform") glorotUniform(out, off, rows, cols, rng);
  else if (name === "orthogonal") orthogonal(out, off, rows, cols, rng);
  else out.fill(0, off, off + rows * cols);
}
