/**
 * States in and out for stateless models (Keras's `return_state` / `initial_state`): a pass starts from the
 * `initialStates` given to predict, computeGradients, trainOnBatch or testOnBatch, and `getStates()` after a
 * pass gives every row's final (h, c), so an encoder's states start a decoder. Checked by identities: an encoder
 * then a decoder with the same weights is one LSTM over the joined sequence; a given initial state is a stateful
 * model's set state; dL/d(initial state) against central differences of the loss in that state.
 */
import { describe, expect, it } from "vitest";
import ndarray from "ndarray";
import { Sequential, LSTM, Dense, randomNormal, setThreads, ShapeError, ValueError, type Tensor } from "../src/node/index.js";

/** [B, T1 + T2, F]: a's steps, then b's. */
function join(a: Tensor, b: Tensor): Tensor {
  const [B, T1, F] = a.shape as [number, number, number], T2 = b.shape[1]!;
  const out = new Float64Array(B * (T1 + T2) * F);
  for (let r = 0; r < B; r++) {
    out.set(a.data.subarray(r * T1 * F, (r + 1) * T1 * F), r * (T1 + T2) * F);
    out.set(b.data.subarray(r * T2 * F, (r + 1) * T2 * F), (r * (T1 + T2) + T1) * F);
  }
  return ndarray(out, [B, T1 + T2, F]) as Tensor;
}

describe("states in and out", () => {
  it("an encoder's final states start a decoder: with the same weights, one LSTM over the joined sequence", () => {
    const B = 3, F = 2, H = 4, T1 = 5, T2 = 4;
    const enc = new Sequential([new LSTM({ units: H, inputDim: F })], { seed: 1 });
    const dec = new Sequential([new LSTM({ units: H, inputDim: F, returnSequences: true })], { seed: 2 });
    const whole = new Sequential([new LSTM({ units: H, inputDim: F, returnSequences: true })], { seed: 3 });
    dec.setWeights(enc.getWeights());
    whole.setWeights(enc.getWeights());
    const xe = randomNormal([B, T1, F], { seed: 4 }), xd = randomNormal([B, T2, F], { seed: 5 });
    const last = enc.predict(xe);
    const states = enc.getStates();           // every row's final (h, c), [B, H] each
    expect(states[0]!.h.shape).toEqual([B, H]);
    expect(Array.from(states[0]!.h.data)).toEqual(Array.from(last.data)); // the last h is the output
    const p = dec.predict(xd, { initialStates: states });
    const w = whole.predict(join(xe, xd));
    for (let r = 0; r < B; r++) {
      for (let t = 0; t < T2; t++) {
        for (let j = 0; j < H; j++) expect(p.data[(r * T2 + t) * H + j]).toBe(w.data[(r * (T1 + T2) + T1 + t) * H + j]);
      }
    }
    // Not vacuous: from zeros the decoder gives something else.
    expect(Array.from(dec.predict(xd).data)).not.toEqual(Array.from(p.data));
    // In batches, each batch starts from its own rows of the states.
    expect(Array.from(dec.predict(xd, { initialStates: states, batchSize: 2 }).data)).toEqual(Array.from(p.data));
  });

  it("a step from given states is a stateful model's step from the same set states: loss, weights, final states", () => {
    const B = 2, F = 3, T = 4;
    const states = [{ h: randomNormal([B, 3], { seed: 6 }), c: randomNormal([B, 3], { seed: 7 }) }, { h: randomNormal([B, 2], { seed: 8 }), c: randomNormal([B, 2], { seed: 9 }) }];
    const layers = (stateful: boolean) => [
      new LSTM({ units: 3, inputDim: F, returnSequences: true, stateful, batchSize: stateful ? B : undefined }),
      new LSTM({ units: 2, stateful, batchSize: stateful ? B : undefined }), new Dense({ units: 1 }),
    ];
    const free = new Sequential(layers(false), { seed: 10 }), held = new Sequential(layers(true), { seed: 10 });
    for (const m of [free, held]) m.compile({ optimizer: "adam", loss: "mse" });
    const x = randomNormal([B, T, F], { seed: 11 }), y = randomNormal([B, 1], { seed: 12 });
    held.resetStates(states);
    expect(free.testOnBatch(x, y, { initialStates: states }).loss).toBe(held.testOnBatch(x, y).loss);
    held.resetStates(states);
    expect(free.trainOnBatch(x, y, { initialStates: states }).loss).toBe(held.trainOnBatch(x, y).loss);
    expect(free.getWeights().map((t) => Array.from(t.data))).toEqual(held.getWeights().map((t) => Array.from(t.data)));
    expect(free.getStates().map((s) => Array.from(s.c!.data))).toEqual(held.getStates().map((s) => Array.from(s.c!.data)));
  });

  it("computeGradients' stateGrads are dL/d(given initial state): central differences agree to 1e-7", () => {
    const B = 2, F = 2, H = 3;
    const m = new Sequential([new LSTM({ units: H, inputDim: F, returnSequences: true }), new Dense({ units: 2, activation: "tanh" })], { seed: 13 });
    m.compile({ optimizer: "sgd", loss: "mse" });
    const x = randomNormal([B, 5, F], { seed: 14 }), y = randomNormal([B, 5, 2], { seed: 15 });
    const h = randomNormal([B, H], { seed: 16 }), c = randomNormal([B, H], { seed: 17 });
    const g = m.computeGradients(x, y, { initialStates: [{ h, c }] });
    const eps = 1e-5;
    for (const [name, t, grad] of [["h", h, g.stateGrads[0]!.h], ["c", c, g.stateGrads[0]!.c]] as const) {
      for (let k = 0; k < B * H; k++) {
        const v = t.data[k]!;
        t.data[k] = v + eps; const up = m.computeGradients(x, y, { initialStates: [{ h, c }] }).loss;
        t.data[k] = v - eps; const down = m.computeGradients(x, y, { initialStates: [{ h, c }] }).loss;
        t.data[k] = v;
        expect(Math.abs((up - down) / (2 * eps) - grad!.data[k]!), `${name}[${k}]`).toBeLessThan(1e-7);
      }
    }
    expect(g.stateGrads[0]!.h.data.some((v) => Math.abs(v) > 1e-3)).toBe(true);
  });

  it("with threads, a call from given states runs on the calling thread and gives one thread's result", () => {
    const x = randomNormal([6, 4, 2], { seed: 18 });
    const states = [{ h: randomNormal([6, 3], { seed: 19 }), c: randomNormal([6, 3], { seed: 20 }) }];
    const one = new Sequential([new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 1 })], { seed: 21 });
    const two = new Sequential([new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 1 })], { seed: 21 });
    setThreads(two, 2, { minFlops: 0 });
    expect(Array.from(two.predict(x, { initialStates: states }).data)).toEqual(Array.from(one.predict(x, { initialStates: states }).data));
    expect(((two.engine.executor as unknown) as { parallelCalls: number }).parallelCalls).toBe(0);
    two.predict(x); // without given states it splits
    expect(((two.engine.executor as unknown) as { parallelCalls: number }).parallelCalls).toBe(1);
    two.dispose();
  });

  it("is checked before anything happens: counts, shapes, rows, values, unknown options", () => {
    const m = new Sequential([new LSTM({ units: 3 }), new Dense({ units: 1 })], { seed: 22 });
    m.compile({ optimizer: "sgd", loss: "mse" });
    const x = randomNormal([2, 4, 2], { seed: 23 }), y = randomNormal([2, 1], { seed: 24 });
    const ok = { h: randomNormal([2, 3], { seed: 25 }), c: randomNormal([2, 3], { seed: 26 }) };
    expect(() => m.predict(x, { initialStates: [] })).toThrow(/predict initialStates: expected 1 state objects \(one per recurrent layer: \{ h, c \}\), got 0/);
    expect(() => m.predict(x, { initialStates: [{ h: ok.h, c: randomNormal([3, 3], { seed: 1 }) }] })).toThrow(ShapeError);
    expect(() => m.trainOnBatch(x, y, { initialStates: [{ h: randomNormal([3, 3], { seed: 1 }), c: ok.c }] })).toThrow(/trainOnBatch initialStates\[0\]\.h: expected shape \[B, H\] = \[2, 3\], got \[3, 3\]/);
    expect(() => m.computeGradients(x, y, { initialStates: [{ h: [[NaN, 0, 0], [0, 0, 0]], c: ok.c }] })).toThrow(/computeGradients initialStates\[0\]\.h/);
    expect(() => m.testOnBatch(x, y, { initialState: [ok] } as never)).toThrow(ValueError);
    expect(m.engine.built).toBe(false); // no refused call built the model
    expect(m.predict(x, { initialStates: [ok] }).shape).toEqual([2, 1]);
  });
});
