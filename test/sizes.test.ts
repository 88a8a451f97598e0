/**
 * Sizes reach the hot loops as small integers (V8 Smis), whatever the caller's numbers were boxed as: a size
 * read from an array that also holds a fraction is a double inside V8, and indexing every kernel with such
 * doubles measured a training step at S2 2× slower (109 vs 58 ms here). This checks the representation with V8's
 * own %IsSmi, which is what decides it; the time is a bench matter.
 */
import { describe, expect, it } from "vitest";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Sequential, LSTM, Dense, TruncatedBPTT, randomNormal, zeros } from "../src/index.js";

setFlagsFromString("--allow-natives-syntax");
const isSmi = runInNewContext("(v) => %IsSmi(v)") as (v: unknown) => boolean;

describe("sizes are small integers at the boundary", () => {
  it("layer sizes, input shapes, batch sizes and windows given as boxed doubles come out as Smis", () => {
    const cfg = [1.5, 6, 3, 4, 5, 2]; // doubles: the array holds a fraction
    const [, H, B, T, F, k] = cfg as [number, number, number, number, number, number];
    expect(isSmi(H)).toBe(false); // the premise: these arrive boxed
    const lstm = new LSTM({ units: H, inputDim: F }), dense = new Dense({ units: cfg[5]! });
    expect([isSmi(lstm.units), isSmi(lstm.inputDim), isSmi(dense.units)]).toEqual([true, true, true]);
    const x = randomNormal([B, T, F], { seed: 1 });
    expect(x.shape.every(isSmi)).toBe(true);
    expect(zeros([B, T, F]).shape.every(isSmi)).toBe(true);
    const m = new Sequential([lstm, dense], { seed: 1 });
    m.compile({ optimizer: "sgd", loss: "mse" });
    const y = randomNormal([B, cfg[5]!], { seed: 2 });
    m.trainOnBatch(x, y);
    const e = m.engine as unknown as { B: number; cap: number };
    expect([isSmi(e.B), isSmi(e.cap), isSmi(m.engine.ws(0).B)]).toEqual([true, true, true]);
    const tb = new TruncatedBPTT(m, { windowLength: k, backpropLength: k });
    expect([isSmi(tb.windowLength), isSmi(tb.backpropLength)]).toEqual([true, true]);
    const s = new Sequential([new LSTM({ units: H, inputDim: F, stateful: true }), new Dense({ units: 1 })], { seed: 1 });
    s.setBatchSize(B);
    expect(isSmi(s.batchSize)).toBe(true);
    // A plain nested-array input whose shape comes from lengths is Smi-sized anyway; a user's ndarray with a
    // boxed shape is normalised where the call reads it.
    const predicted = m.predict(x, { batchSize: cfg[2]! });
    expect(predicted.shape.every(isSmi)).toBe(true);
  });
});
