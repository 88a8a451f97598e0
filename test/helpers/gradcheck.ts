/**
 * The one gradient-check helper every gradient test uses: central differences in float64 against a
 * scalar loss that the caller builds as a seeded random projection of the piece's outputs,
 * L = Σ_k r_k · out_k with r ~ U(-1, 1). A random projection makes dL/d(out) = r dense and unstructured, so
 * every output and every path into it is exercised, and a sign or index slip cannot cancel out.
 *
 * The difference quotient is the fourth-order central stencil
 *   L'(w) ≈ [8 (L(w+h) - L(w-h)) - (L(w+2h) - L(w-2h))] / 12h,
 * whose truncation error is ~h⁴·L⁽⁵⁾/30 instead of the two-point stencil's ~h²·L'''/6. With h = 1e-3 both
 * truncation (~1e-13) and round-off (~1e-16·|L|/h ≈ 1e-13) stay far below what a 1e-6 relative
 * tolerance needs, even for gradient entries of size 1e-6, where the two-point stencil is at its limit.
 * (The library's own `gradCheck` uses the two-point stencil; the model tests check it too.)
 *
 * Relative error per entry: |a - n| / max(|a|, |n|, floor). The floor (default 1e-6, as the library's
 * gradCheck) stops entries that are zero up to round-off (e.g. dL/d(forget gate) at a step whose c_{t-1}
 * is 0) from dividing by zero: below it a 1e-6 tolerance is an absolute 1e-12, five times the stencil's
 * round-off (~18·1.1e-16·|L|/12h ≈ 2e-13 for |L| ~ 1) and still far below any real slip.
 */
import { expect } from "vitest";
import { Rng } from "../../src/init.js";

export type Arr = Float32Array | Float64Array;

/** A seeded random source for tests (the engine's own seedrandom-backed Rng). */
export function makeRng(seed: string | number): Rng {
  return new Rng(`test/${seed}`);
}

/** n values uniform in [lo, hi). */
export function uniformArray(rng: Rng, n: number, lo = -1, hi = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.uniform();
  return a;
}

/** Fills `out[off … off+n)` uniformly in [lo, hi). */
export function fillUniform(rng: Rng, out: Arr, off: number, n: number, lo = -1, hi = 1): void {
  for (let i = 0; i < n; i++) out[off + i] = lo + (hi - lo) * rng.uniform();
}

/** An integer in [lo, hi] inclusive. */
export function randInt(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

/** Σ_k r[rOff + k] · v[vOff + k] over n entries: the random-projection loss. */
export function project(n: number, v: ArrayLike<number>, vOff: number, r: ArrayLike<number>, rOff = 0): number {
  let s = 0;
  for (let k = 0; k < n; k++) s += r[rOff + k]! * v[vOff + k]!;
  return s;
}

/** One tensor to differentiate with respect to: entries [off, off + count) of `values`, perturbed in place. */
export interface Wrt {
  name: string;
  values: Arr;          // perturbed in place and restored exactly
  analytic: ArrayLike<number>; // analytic[k] is dL/d values[off + k]
  off?: number;         // default 0
  count?: number;       // default values.length - off
  /** Check only these k (relative to off); default every entry. */
  indices?: number[];
}

export interface GradCheckOptions {
  /** Finite-difference step h. Default 1e-3 (fourth-order stencil; see the file comment). */
  step?: number;
  /** Denominator floor of the relative error. Default 1e-6. */
  floor?: number;
}

export interface EntryReport {
  name: string;
  worst: number;     // worst relative error over the checked entries
  index: number;     // where (relative to off), -1 when nothing checked
  analytic: number;
  numeric: number;
  checked: number;
  maxAbsGrad: number; // largest |analytic| seen, to show the check is not vacuous
}

export interface GradCheckReport {
  worst: number;
  entries: EntryReport[];
}

/** The fourth-order central difference of `loss` w.r.t. values[i]; values[i] is restored bit for bit. */
export function numericDerivative(loss: () => number, values: Arr, i: number, h: number): number {
  const saved = values[i]!;
  values[i] = saved + h; const p1 = loss();
  values[i] = saved - h; const m1 = loss();
  values[i] = saved + 2 * h; const p2 = loss();
  values[i] = saved - 2 * h; const m2 = loss();
  values[i] = saved;
  // For float32 buffers saved ± h rounds; the helper is meant for float64 (asserted below).
  return (8 * (p1 - m1) - (p2 - m2)) / (12 * h);
}

export function relativeError(a: number, n: number, floor: number): number {
  const d = Math.abs(a - n);
  if (Number.isNaN(d)) return Infinity;
  return d / Math.max(Math.abs(a), Math.abs(n), floor);
}

/**
 * Compares analytic gradients with finite differences of `loss` for every Wrt. `loss` must recompute
 * everything from the current contents of the perturbed arrays (and must not change them).
 */
export function checkGradients(loss: () => number, wrts: Wrt[], options: GradCheckOptions = {}): GradCheckReport {
  const h = options.step ?? 1e-3;
  const floor = options.floor ?? 1e-6;
  const entries: EntryReport[] = [];
  for (const w of wrts) {
    if (!(w.values instanceof Float64Array)) throw new Error(`checkGradients ${w.name}: expected a Float64Array, got ${w.values.constructor.name}`);
    const off = w.off ?? 0;
    const count = w.count ?? w.values.length - off;
    if (w.analytic.length < count) throw new Error(`checkGradients ${w.name}: analytic has ${w.analytic.length} entries, expected ≥ ${count}`);
    const idx = w.indices ?? Array.from({ length: count }, (_, k) => k);
    const rep: EntryReport = { name: w.name, worst: 0, index: -1, analytic: NaN, numeric: NaN, checked: 0, maxAbsGrad: 0 };
    for (const k of idx) {
      const a = w.analytic[k]!;
      const n = numericDerivative(loss, w.values, off + k, h);
      const rel = relativeError(a, n, floor);
      rep.checked++;
      rep.maxAbsGrad = Math.max(rep.maxAbsGrad, Math.abs(a));
      if (rel > rep.worst || rep.index < 0) { rep.worst = rel; rep.index = k; rep.analytic = a; rep.numeric = n; }
    }
    entries.push(rep);
  }
  return { worst: Math.max(0, ...entries.map((e) => e.worst)), entries };
}

/** Fails naming the tensor, index and both values when some entry's relative error exceeds `tol`. */
export function expectGradientsMatch(label: string, report: GradCheckReport, tol = 1e-6): void {
  for (const e of report.entries) {
    expect(e.checked, `${label} ${e.name}: no entries checked`).toBeGreaterThan(0);
    if (!(e.worst <= tol)) {
      expect.fail(`${label} ${e.name}[${e.index}]: analytic ${e.analytic} vs numeric ${e.numeric}, relative error ${e.worst.toExponential(2)} > ${tol}`);
    }
  }
}

/** Records the worst error seen per test file (printed by the tests' afterAll for the report). */
export class WorstTracker {
  readonly worst = new Map<string, number>();
  add(label: string, report: GradCheckReport): void {
    this.worst.set(label, Math.max(this.worst.get(label) ?? 0, report.worst));
  }
  summary(): string {
    return [...this.worst.entries()].map(([k, v]) => `${k}: ${v.toExponential(2)}`).join("\n");
  }
}

/** max_k |a_k - b_k| over n entries (with offsets), for the exact-equality checks. */
export function maxAbsDiff(n: number, a: ArrayLike<number>, aOff: number, b: ArrayLike<number>, bOff: number): number {
  let m = 0;
  for (let k = 0; k < n; k++) {
    const d = Math.abs(a[aOff + k]! - b[bOff + k]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
