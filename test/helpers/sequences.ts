/** Small helpers of the order and cell tests: comparisons, flattening, slicing and masking [B, T, F] inputs. */
import { expect } from "vitest";
import ndarray from "ndarray";
import { TruncatedBPTT, type Sequential, type Tensor } from "../../src/index.js";

/** The largest |a − e| / max(|e|, floor) over the entries. */
export function maxRel(a: ArrayLike<number>, e: ArrayLike<number>, floor = 1e-9): number {
  expect(a.length).toBe(e.length);
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]! - e[k]!) / Math.max(Math.abs(e[k]!), floor));
  return m;
}

/** Tensors' values one after the other (getWeights or grads as one vector). */
export function flat(ts: Tensor[]): Float64Array {
  const out = new Float64Array(ts.reduce((s, t) => s + t.data.length, 0));
  let off = 0;
  for (const t of ts) { out.set(t.data, off); off += t.data.length; }
  return out;
}

/** Steps [from, to) of x [B, T, F], as a new [B, to − from, F] tensor. */
export function steps(x: Tensor, from: number, to: number): Tensor {
  const [B, T, F] = x.shape as [number, number, number], n = to - from;
  const out = new Float64Array(B * n * F);
  for (let b = 0; b < B; b++) out.set(x.data.subarray((b * T + from) * F, (b * T + to) * F), b * n * F);
  return ndarray(out, [B, n, F]) as Tensor;
}

/** x [B, T, F] with every feature of the listed (row, step) pairs set to `v` (Masking's value). */
export function masked(x: Tensor, at: [number, number][], v = 0): Tensor {
  const [, T, F] = x.shape as [number, number, number];
  const d = Float64Array.from(x.data);
  for (const [b, t] of at) d.fill(v, (b * T + t) * F, (b * T + t + 1) * F);
  return ndarray(d, x.shape.slice()) as Tensor;
}

/**
 * Truncated BPTT against its definition: every window's loss and gradients (an update-free pass with window k1 and
 * reach k2) equal computeGradients over the window's reach from the state there, which a stateful twin with m's
 * weights reaches by predicting the steps before the reach. `twin` is the same stack built stateful.
 */
export function expectWindowsMatchTwin(m: Sequential, twin: Sequential, x: Tensor, y: Tensor, k1: number, k2: number): void {
  const T = x.shape[1]!;
  const windows: { t1: number; loss: number; grads: Float64Array }[] = [];
  new TruncatedBPTT(m, { windowLength: k1, backpropLength: k2 }).trainSequence(x, y, {
    update: false, onWindow: (w) => windows.push({ t1: (w.index + 1) * k1, loss: w.loss, grads: Float64Array.from(w.grads) }),
  });
  expect(windows.length).toBe(T / k1);
  twin.setWeights(m.getWeights());
  twin.compile({ optimizer: "sgd", loss: m.loss! });
  for (const w of windows) {
    const from = Math.max(0, w.t1 - k2);
    twin.resetStates();
    if (from > 0) twin.predict(steps(x, 0, from));
    const g = twin.computeGradients(steps(x, from, w.t1), y, { keepState: true });
    expect(maxRel([w.loss], [g.loss]), `window ending at ${w.t1}: loss`).toBeLessThan(1e-12);
    expect(maxRel(w.grads, flat(g.grads), 1e-8), `window ending at ${w.t1}: gradients`).toBeLessThan(1e-9);
  }
}
