/**
 * What the thread tests share (test/parallel.test.ts, test/parallel-masked.test.ts): comparisons to 1e-12 relative
 * that name the worst entry, a pseudo-random stream that does not depend on the library, and the comparison of two
 * computeGradients results.
 */
import { expect } from "vitest";
import { zeros, type Tensor, type Gradients } from "../../src/node/index.js";
import type { DType } from "../../src/tensor/tensor.js";

export const RTOL = 1e-12;

/**
 * The largest |a - e| / max(|e|, 1e-3·max|e|) over the entries, naming the worst index on failure: the
 * relative error of every entry within three decades of the array's largest, and below that an absolute
 * error of rtol·1e-3·max|e|. (An entry that is a sum of terms of both signs can cancel far below its
 * terms, whose size its rounding error follows: -9.04e-9 among gradients of ~1e-2 differs by 1.5e-12
 * relative when its rows are summed in another order.)
 */
export function expectRel(name: string, actual: ArrayLike<number>, expected: ArrayLike<number>, rtol = RTOL): void {
  expect(actual.length, `${name}: length`).toBe(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  let worst = 0, at = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    const err = a === e ? 0 : Math.abs(a - e) / Math.max(Math.abs(e), 1e-3 * scale);
    if (Number.isNaN(err)) { worst = NaN; at = i; break; }
    if (err > worst) { worst = err; at = i; }
  }
  expect(worst, `${name}: worst relative error at index ${at} (${actual[at]} vs ${expected[at]})`).toBeLessThanOrEqual(rtol);
}

export function expectTensors(name: string, actual: Tensor[], expected: Tensor[], rtol = RTOL): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((t, i) => {
    expect(t.shape, `${name}[${i}] shape`).toEqual(expected[i]!.shape);
    expectRel(`${name}[${i}]`, t.data, expected[i]!.data, rtol);
  });
}

/** A pseudo-random stream that does not depend on the library. */
export function stream(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

export function randomTensor(shape: number[], next: () => number, binary = false, dtype: DType = "float64"): Tensor {
  const t = zeros(shape, dtype);
  for (let i = 0; i < t.data.length; i++) t.data[i] = binary ? (next() < 0.5 ? 0 : 1) : 2 * next() - 1;
  return t;
}

export function expectSameGradients(name: string, a: Gradients, e: Gradients): void {
  expectRel(`${name} loss`, [a.loss], [e.loss]);
  expectTensors(`${name} grads`, a.grads, e.grads);
  expectTensors(`${name} outputs`, [a.outputs], [e.outputs]);
  expectTensors(`${name} inputGrad`, [a.inputGrad], [e.inputGrad]);
  expectTensors(`${name} stateGrads.h`, a.stateGrads.map((g) => g.h), e.stateGrads.map((g) => g.h));
  expect(a.stateGrads.map((g) => g.c === undefined), `${name} which layers have a c`).toEqual(e.stateGrads.map((g) => g.c === undefined));
  expectTensors(`${name} stateGrads.c`, a.stateGrads.flatMap((g) => (g.c ? [g.c] : [])), e.stateGrads.flatMap((g) => (g.c ? [g.c] : [])));
  expectTensors(`${name} hiddenStates`, a.hiddenStates, e.hiddenStates);
  expect(a.hiddenGradNorms === undefined).toBe(e.hiddenGradNorms === undefined);
  a.hiddenGradNorms?.forEach((n, i) => expectRel(`${name} hiddenGradNorms[${i}]`, n, e.hiddenGradNorms![i]!));
}
