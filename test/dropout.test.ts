/**
 * Dropout and recurrent dropout beyond the golden values (test/fixtures/seq_dropout_*, PyTorch with the same
 * masks): training only, seeded and reproducible, masks of the right rate and scale, one set per batch (per
 * sequence in truncated BPTT), the update exactly the training-mode gradient, threads and interop.
 */
import type { ThreadPool } from "../src/threads/pool.js";
import { afterAll, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import {
  Sequential, LSTM, Dense, SGD, TruncatedBPTT, ValueError, randomNormal, setThreads, toTfjs, fromTfjs, type Tensor,
  checkpointToJSON, checkpointFromJSON, encodeCheckpoint, decodeCheckpoint,
} from "../src/node/index.js";

import { checkGradients, expectGradientsMatch, type Wrt } from "./helpers/gradcheck.js";

const live: Sequential[] = [];
afterAll(() => { for (const m of live) m.dispose(); });

const B = 4, T = 6, F = 3;
const X = randomNormal([B, T, F], { seed: 1 });
const Y = [[1], [0], [1], [0]];

function model(dropout: number, recurrentDropout: number, seed = 3, perStep = false): Sequential {
  const m = new Sequential([
    new LSTM({ units: 5, inputDim: F, dropout, recurrentDropout, returnSequences: perStep }),
    new Dense({ units: 1, activation: "sigmoid" }),
  ], { seed });
  m.compile({ optimizer: new SGD({ learningRate: 0.5 }), loss: "binaryCrossentropy" });
  return m;
}

const flat = (ts: Tensor[]): number[] => ts.flatMap((t) => Array.from(t.data));

describe("dropout", () => {
  it("only while training: predict, evaluate and testOnBatch are those of the same weights without dropout", () => {
    const d = model(0.5, 0.5), plain = model(0, 0);
    plain.setWeights(d.getWeights());
    expect(Array.from(d.predict(X).data)).toEqual(Array.from(plain.predict(X).data));
    expect(d.testOnBatch(X, Y)).toEqual(plain.testOnBatch(X, Y));
    expect(d.evaluate(X, Y)).toEqual(plain.evaluate(X, Y));
    expect(d.computeGradients(X, Y).loss).toBe(plain.computeGradients(X, Y).loss); // a study pass is an inference pass…
    expect(d.computeGradients(X, Y, { training: true }).loss).not.toBe(plain.computeGradients(X, Y).loss); // …unless asked
    // trainOnBatch reports the training-mode loss (with this batch's masks), as Keras does.
    expect(d.trainOnBatch(X, Y).loss).not.toBe(plain.testOnBatch(X, Y).loss);
  });

  it("a training step is SGD on the training-mode gradient with the same masks (the same draw of the dropout RNG)", () => {
    const a = model(0.3, 0.4), b = model(0.3, 0.4);
    const g = a.computeGradients(X, Y, { training: true });
    const w0 = flat(b.getWeights());
    const r = b.trainOnBatch(X, Y);
    expect(r.loss).toBe(g.loss);
    const w1 = flat(b.getWeights()), grads = flat(g.grads);
    w1.forEach((v, k) => expect(Math.abs(v - (w0[k]! - 0.5 * grads[k]!))).toBeLessThan(1e-15));
  });

  it("seeded and reproducible: the same seed trains the same; another seed draws other masks", async () => {
    const run = async (seed: number) => {
      const m = model(0.3, 0.3, seed);
      m.setWeights(model(0, 0, 99).getWeights()); // the same start, only the dropout RNG differs
      await m.fit(X, Y, { epochs: 3, batchSize: 2, shuffle: false, verbose: 0 });
      return flat(m.getWeights());
    };
    expect(await run(5)).toEqual(await run(5));
    expect(await run(5)).not.toEqual(await run(6));
  });

  it("masks: 0 or 1/(1 − p), about a fraction p of zeros, per row and unit, the same at every step", () => {
    const m = new Sequential([new LSTM({ units: 50, inputDim: 40, dropout: 0.3, recurrentDropout: 0.6 }), new Dense({ units: 1 })], { seed: 8 });
    m.compile({ optimizer: "sgd", loss: "mse" });
    const x = randomNormal([64, 2, 40], { seed: 2 });
    m.trainOnBatch(x, randomNormal([64, 1], { seed: 3 }));
    const ws = m.engine.ws(0);
    const check = (mask: Float64Array, p: number) => {
      const zeros = mask.filter((v) => v === 0).length;
      expect(mask.every((v) => v === 0 || v === 1 / (1 - p))).toBe(true);
      expect(Math.abs(zeros / mask.length - p)).toBeLessThan(0.03);
    };
    check(ws.xMask!, 0.3);
    check(ws.hMask!, 0.6);
    expect(ws.xMask!.length).toBe(64 * 40);
    expect(ws.hMask!.length).toBe(64 * 50);
  });

  it("TruncatedBPTT: one set of masks per sequence, the same in every window; one window over the sequence is trainOnBatch", () => {
    const a = model(0.3, 0.4, 4), b = model(0.3, 0.4, 4);
    const r1 = a.trainOnBatch(X, Y);
    const r2 = new TruncatedBPTT(b, { windowLength: T }).trainSequence(X, Y);
    expect(r2.loss).toBe(r1.loss);
    expect(flat(b.getWeights())).toEqual(flat(a.getWeights()));
    const c = model(0.3, 0.4, 4);
    const seen: string[] = [];
    const tb = new TruncatedBPTT(c, { windowLength: 2, backpropLength: 4 });
    const mark = () => seen.push(Array.from(c.engine.ws(0).xMask!).join() + "|" + Array.from(c.engine.ws(0).hMask!).join());
    tb.trainSequence(X, Y, { onWindow: mark });
    expect(new Set(seen).size).toBe(1); // three windows, one set of masks
    tb.trainSequence(X, Y, { onWindow: mark });
    expect(new Set(seen).size).toBe(2); // the next sequence draws new ones
  });

  it("with threads set, a dropout step splits across threads with one thread's masks and equals one thread's (to rounding)", () => {
    const one = model(0.3, 0.3, 7), two = model(0.3, 0.3, 7);
    setThreads(two, 2, { minFlops: 0 });
    live.push(two);
    const x = randomNormal([16, T, F], { seed: 4 }), y = Array.from({ length: 16 }, (_, i) => [i % 2]);
    const close = (a: number, e: number): void => expect(Math.abs(a - e)).toBeLessThanOrEqual(1e-12 * Math.max(Math.abs(e), 1e-3));
    for (let s = 0; s < 3; s++) close(two.trainOnBatch(x, y).loss, one.trainOnBatch(x, y).loss);
    const w1 = flat(one.getWeights());
    flat(two.getWeights()).forEach((v, i) => close(v, w1[i]!));
    expect((two.engine.executor as ThreadPool).parallelCalls).toBe(3);
    expect(two.engine.dropoutRng.state()).toEqual(one.engine.dropoutRng.state()); // the same draws, as many
  });

  it("TensorFlow.js carries the rates both ways (they apply only in training there too)", async () => {
    await tf.setBackend("cpu");
    const m = model(0.25, 0.5);
    const back = fromTfjs(toTfjs(m));
    expect([(back.layers[0] as LSTM).dropout, (back.layers[0] as LSTM).recurrentDropout]).toEqual([0.25, 0.5]);
    const tfModel = await tf.loadLayersModel(tf.io.fromMemory(toTfjs(m)));
    const p = (tfModel.predict(tf.tensor3d(Array.from(X.data), [B, T, F])) as tf.Tensor).dataSync();
    Array.from(m.predict(X).data).forEach((v, i) => expect(Math.abs(v - p[i]!)).toBeLessThan(1e-6));
  });

  it("training-mode gradients match finite differences of the training-mode loss with the same masks (weights and dL/dx)", () => {
    const m = new Sequential([
      new LSTM({ units: 4, inputDim: F, returnSequences: true, dropout: 0.3, recurrentDropout: 0.4 }),
      new LSTM({ units: 3, dropout: 0.2, recurrentDropout: 0.25 }),
      new Dense({ units: 1, activation: "sigmoid" }),
    ], { seed: 21 });
    m.compile({ optimizer: "sgd", loss: "binaryCrossentropy" });
    const x = randomNormal([B, T, F], { seed: 3 });
    const g = m.computeGradients(x, Y, { training: true }); // draws one set of masks…
    const masks = m.engine.rnns.map((_, i) => ({ x: Float64Array.from(m.engine.ws(i).xMask!), h: Float64Array.from(m.engine.ws(i).hMask!) }));
    const loss = (): number => { m.engine.nextMasks = masks; return m.computeGradients(x, Y, { training: true }).loss; }; // …reused for every probe
    expect(loss()).toBe(g.loss);
    const wrts: Wrt[] = [];
    let off = 0;
    g.grads.forEach((t, i) => {
      wrts.push({ name: m.weightNames()[i]!, values: m.engine.params as Float64Array, off, count: t.data.length, analytic: t.data, indices: Array.from({ length: Math.min(12, t.data.length) }, (_, q) => Math.floor((q * t.data.length) / Math.min(12, t.data.length))) });
      off += t.data.length;
    });
    wrts.push({ name: "inputGrad", values: x.data as Float64Array, analytic: g.inputGrad.data });
    const rep = checkGradients(loss, wrts);
    expectGradientsMatch("dropout, training mode", rep, 1e-6);
    // Not vacuous: the masks zero some inputs, whose gradient is then exactly 0.
    expect(masks[0]!.x.some((v) => v === 0)).toBe(true);
  });

  it("a checkpoint carries the rates and the dropout RNG's position: saved mid-run, training resumes bit for bit", () => {
    const a = model(0.3, 0.2, 12);
    a.trainOnBatch(X, Y);
    const json = checkpointToJSON(a);
    expect(json.version).toBe(2);
    expect(json.config.layers[0]).toMatchObject({ dropout: 0.3, recurrentDropout: 0.2 });
    expect(json.dropoutRng!.S).toHaveLength(256);
    const b = decodeCheckpoint(encodeCheckpoint(a));
    for (let s = 0; s < 3; s++) expect(b.trainOnBatch(X, Y)).toEqual(a.trainOnBatch(X, Y));
    expect(flat(b.getWeights())).toEqual(flat(a.getWeights()));
    const bad: any = JSON.parse(JSON.stringify(checkpointToJSON(a)));
    delete bad.dropoutRng;
    expect(() => checkpointFromJSON(bad)).toThrow(/dropoutRng: missing: a model with dropout must carry its dropout RNG's position/);
    bad.config.layers[0].dropout = 1.5;
    expect(() => checkpointFromJSON(bad)).toThrow(/config\.layers\[0\]\.dropout: expected a rate in \[0, 1\), got 1\.5/);
  });

  it("rates are checked", () => {
    expect(() => new LSTM({ units: 2, dropout: 1 })).toThrow(/LSTM dropout: expected a rate in \[0, 1\), got 1/);
    expect(() => new LSTM({ units: 2, recurrentDropout: -0.1 })).toThrow(ValueError);
    expect(() => new LSTM({ units: 2, recurrent_dropout: 0.1 } as never)).toThrow(/did you mean "recurrentDropout"/);
  });
});
