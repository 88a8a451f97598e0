/**
 * The GRU (src/layers/gru.ts), Keras 3's, checked as exactly as the LSTM:
 * - its forward against a plain reference written here from Keras's equations (gru.py's GRUCell.call), for
 *   resetAfter true and false, both recurrent activations, without a bias, goBackwards and Masking;
 * - gradCheck (central differences, float64) on both backends, for every option on the path users take;
 * - stateful carry, initial states in and out, truncated BPTT with kept history (window by window against
 *   computeGradients from a stateful twin), both backends agreeing, checkpoints and safetensors bit for bit;
 * - its options checked at the boundary, and wrong orders refused by the rule.
 * PyTorch's values (torch.nn.GRU) are in test/fixtures.test.ts; tfjs's in test/tfjs-interop.test.ts.
 */
import { describe, expect, it } from "vitest";
import ndarray from "ndarray";
import {
  Sequential, GRU, LSTM, Dense, Masking, Embedding, TruncatedBPTT, gradCheck, randomNormal, ValueError, type Tensor,
  checkpointToJSON, checkpointFromJSON, toSafetensors, fromSafetensors,
} from "../src/index.js";
import { fromData } from "../src/tensor/tensor.js";
import { expectWindowsMatchTwin, flat, masked, maxRel, steps } from "./helpers/sequences.js";

type Backend = "js" | "wasm";
const BACKENDS: Backend[] = ["js", "wasm"];

/** Every weight moved off its initial value (biases start at zero), so that every term of the equations counts. */
function perturb(m: Sequential, seed: number): void {
  m.setWeights(m.getWeights().map((w, i) => {
    const r = randomNormal(w.shape, { seed: seed + i });
    return fromData(Float64Array.from(w.data, (v, k) => v + 0.3 * r.data[k]!), w.shape);
  }));
}

interface RefOptions { resetAfter: boolean; hard: boolean; goBackwards: boolean; mask: Uint8Array | null }

/**
 * A GRU layer's h for every step (in reading order, as Keras returns a backwards layer's), written plainly from
 * Keras 3's GRUCell.call (implementation 2): x·W + b_x, then per step z, r, ĥ and h = z ⊙ h + (1 − z) ⊙ ĥ; a masked
 * step keeps the state. x [B, T, I]; W (I, 3H), U (H, 3H), bias (2, 3H), (3H) or null.
 */
function refGRU(x: Tensor, W: Tensor, U: Tensor, bias: Tensor | null, o: RefOptions): { seq: number[][][]; last: number[][] } {
  const [B, T, I] = x.shape as [number, number, number], H = U.shape[0]!, G = 3 * H;
  const sig = (v: number): number => (o.hard ? Math.min(1, Math.max(0, 0.2 * v + 0.5)) : 1 / (1 + Math.exp(-v)));
  const bx = (k: number): number => (bias ? bias.data[k]! : 0);
  const bh = (k: number): number => (bias && o.resetAfter ? bias.data[G + k]! : 0);
  const seq: number[][][] = [], last: number[][] = [];
  for (let b = 0; b < B; b++) {
    let h = new Array<number>(H).fill(0);
    const out: number[][] = [];
    for (let s = 0; s < T; s++) {
      const t = o.goBackwards ? T - 1 - s : s;
      if (o.mask && !o.mask[b * T + t]) { out.push(h.slice()); continue; }
      const xp = new Array<number>(G).fill(0), hp = new Array<number>(G).fill(0);
      for (let k = 0; k < G; k++) {
        let a = bx(k);
        for (let i = 0; i < I; i++) a += x.data[(b * T + t) * I + i]! * W.data[i * G + k]!;
        xp[k] = a;
        let c = bh(k);
        if (o.resetAfter || k < 2 * H) for (let j = 0; j < H; j++) c += h[j]! * U.data[j * G + k]!;
        hp[k] = c;
      }
      const z = h.map((_, j) => sig(xp[j]! + hp[j]!)), r = h.map((_, j) => sig(xp[H + j]! + hp[H + j]!));
      const cand = h.map((_, j) => {
        if (o.resetAfter) return Math.tanh(xp[2 * H + j]! + r[j]! * hp[2 * H + j]!);
        let q = 0;
        for (let i = 0; i < H; i++) q += r[i]! * h[i]! * U.data[i * G + 2 * H + j]!;
        return Math.tanh(xp[2 * H + j]! + q);
      });
      h = h.map((hv, j) => z[j]! * hv + (1 - z[j]!) * cand[j]!);
      out.push(h.slice());
    }
    seq.push(out);
    last.push(h);
  }
  return { seq, last };
}

describe("the forward is Keras's GRU", () => {
  const B = 3, T = 6, I = 2, H = 4;
  const cases: { name: string; o: Omit<RefOptions, "mask">; useBias: boolean; mask: boolean }[] = [
    { name: "resetAfter true (the default), sigmoid", o: { resetAfter: true, hard: false, goBackwards: false }, useBias: true, mask: false },
    { name: "resetAfter false", o: { resetAfter: false, hard: false, goBackwards: false }, useBias: true, mask: false },
    { name: "hardSigmoid gates", o: { resetAfter: true, hard: true, goBackwards: false }, useBias: true, mask: false },
    { name: "no bias, resetAfter false", o: { resetAfter: false, hard: false, goBackwards: false }, useBias: false, mask: false },
    { name: "goBackwards under Masking", o: { resetAfter: true, hard: false, goBackwards: true }, useBias: true, mask: true },
    { name: "Masking, resetAfter false, hardSigmoid", o: { resetAfter: false, hard: true, goBackwards: false }, useBias: true, mask: true },
  ];
  for (const backend of BACKENDS) {
    for (const c of cases) {
      it(`${c.name} (${backend}): every step's h and the last, to 1e-12`, () => {
        const layers = [
          ...(c.mask ? [new Masking({ maskValue: 0 })] : []),
          new GRU({ units: H, inputDim: I, returnSequences: true, resetAfter: c.o.resetAfter, useBias: c.useBias, recurrentActivation: c.o.hard ? "hardSigmoid" : "sigmoid", goBackwards: c.o.goBackwards }),
        ];
        const m = new Sequential(layers, { dtype: "float64", seed: 5, backend });
        perturb(m, 40);
        const at: [number, number][] = c.mask ? [[0, 0], [0, 3], [1, 5], [2, 2], [2, 3]] : [];
        const x = masked(randomNormal([B, T, I], { seed: 9 }), at);
        const mask = c.mask ? Uint8Array.from({ length: B * T }, (_, q) => (at.some(([b, t]) => b * T + t === q) ? 0 : 1)) : null;
        const [W, U, bias] = m.getWeights();
        const ref = refGRU(x, W!, U!, c.useBias ? bias! : null, { ...c.o, mask });
        const y = m.predict(x);
        // Keras's masked output: zeros before a row's first kept step (in reading order), else the state.
        const want = ref.seq.flatMap((rows, b) => {
          let seen = false;
          return rows.flatMap((h, s) => {
            const t = c.o.goBackwards ? T - 1 - s : s;
            if (!mask || mask[b * T + t]) seen = true;
            return seen ? h : h.map(() => 0);
          });
        });
        expect(maxRel(y.data, want, 1e-6)).toBeLessThan(1e-12);
        const [{ h }] = m.getStates();
        expect(maxRel(h!.data, ref.last.flat(), 1e-6)).toBeLessThan(1e-12);
      });
    }
  }
});

describe("gradCheck on both backends", () => {
  const B = 3, T = 5, F = 2;
  const cases: { name: string; layers: () => (GRU | LSTM | Dense | Masking)[]; mask?: [number, number][]; perStep?: boolean }[] = [
    { name: "GRU → Dense (sigmoid)", layers: () => [new GRU({ units: 4, inputDim: F }), new Dense({ units: 2, activation: "sigmoid" })] },
    { name: "GRU resetAfter false, hardSigmoid, no bias → Dense", layers: () => [new GRU({ units: 4, inputDim: F, resetAfter: false, recurrentActivation: "hardSigmoid", useBias: false }), new Dense({ units: 2, activation: "sigmoid" })] },
    {
      name: "Masking → GRU (sequences, goBackwards) → GRU resetAfter false → Dense",
      layers: () => [new Masking({ maskValue: 0 }), new GRU({ units: 4, inputDim: F, returnSequences: true, goBackwards: true }), new GRU({ units: 3, resetAfter: false }), new Dense({ units: 2, activation: "sigmoid" })],
      mask: [[0, 0], [0, 1], [1, 4], [2, 2]],
    },
    {
      name: "Masking → GRU (sequences, zeroOutputForMask) → LSTM (sequences) → Dense per step",
      layers: () => [new Masking({ maskValue: 0 }), new GRU({ units: 4, inputDim: F, returnSequences: true, zeroOutputForMask: true }), new LSTM({ units: 3, returnSequences: true }), new Dense({ units: 2, activation: "sigmoid" })],
      mask: [[0, 2], [1, 0], [2, 4]], perStep: true,
    },
    { name: "LSTM (sequences) → GRU ending on its sequence, hardSigmoid, resetAfter false", layers: () => [new LSTM({ units: 3, inputDim: F, returnSequences: true }), new GRU({ units: 2, returnSequences: true, resetAfter: false, recurrentActivation: "hardSigmoid" })], perStep: true },
  ];
  for (const backend of BACKENDS) {
    for (const c of cases) {
      it(`${c.name} (${backend}): weights, dL/dx and dL/d(initial state)`, () => {
        const m = new Sequential(c.layers(), { dtype: "float64", seed: 7, backend });
        m.compile({ optimizer: "sgd", loss: "binaryCrossentropy" });
        perturb(m, 3);
        const x = masked(randomNormal([B, T, F], { seed: 2 }), c.mask ?? []);
        const D = m.layers[m.layers.length - 1]!.units;
        const y = randomNormal(c.perStep ? [B, T, D] : [B, D], { seed: 4 });
        for (let k = 0; k < y.data.length; k++) y.data[k] = y.data[k]! > 0 ? 1 : 0;
        const r = gradCheck(m, x, y, { samples: 40 });
        expect(r.maxRelativeError, JSON.stringify(r.perWeight.map((p) => [p.name, p.maxRelativeError]))).toBeLessThan(1e-6);
        // dL/d(initial state) was checked for every state of every recurrent layer: a GRU's h, an LSTM's h and c.
        const count = new Map<string, number>();
        const want = m.layers.flatMap((l) => {
          if (!(l instanceof GRU) && !(l instanceof LSTM)) return [];
          const k = count.get(l.kind) ?? 0;
          count.set(l.kind, k + 1);
          return l instanceof GRU ? [`gru_${k}/h`] : [`lstm_${k}/h`, `lstm_${k}/c`];
        });
        expect(r.states!.map((s) => s.name)).toEqual(want);
      });
    }
  }

  it("dropout: the gradients of a training pass are exact for the masks it drew (central differences with those masks)", () => {
    for (const resetAfter of [true, false]) {
      const m = new Sequential([new GRU({ units: 4, inputDim: F, dropout: 0.3, recurrentDropout: 0.4, resetAfter }), new Dense({ units: 1 })], { dtype: "float64", seed: 2 });
      m.compile({ optimizer: "sgd", loss: "mse" });
      perturb(m, 11);
      const x = randomNormal([B, T, F], { seed: 3 }), y = randomNormal([B, 1], { seed: 4 });
      const xm = new Float64Array(B * F).map((_, k) => (k % 3 === 0 ? 0 : 1 / 0.7)), hm = new Float64Array(B * 4).map((_, k) => (k % 4 === 1 ? 0 : 1 / 0.6));
      const e = m.engine;
      const at = (w: number, v: number): number => {
        const p = Float64Array.from(e.params); e.params[w] = v;
        e.nextMasks = [{ x: xm, h: hm }];
        const loss = m.computeGradients(x, y, { training: true }).loss;
        e.params.set(p);
        return loss;
      };
      e.nextMasks = [{ x: xm, h: hm }];
      const g = flat(m.computeGradients(x, y, { training: true }).grads);
      const eps = 1e-6;
      let worst = 0;
      for (let w = 0; w < e.params.length; w += 3) {
        const v = e.params[w]!;
        const num = (at(w, v + eps) - at(w, v - eps)) / (2 * eps);
        worst = Math.max(worst, Math.abs(num - g[w]!) / Math.max(Math.abs(g[w]!), 1e-7));
      }
      expect(worst, `resetAfter ${resetAfter}`).toBeLessThan(1e-5);
      // And the masks matter: without them (inference) the loss differs.
      expect(m.computeGradients(x, y).loss).not.toBe(at(0, e.params[0]!));
    }
  });
});

describe("state, truncated BPTT and the backends", () => {
  it("a stateful GRU: two calls of T/2 steps equal one call of T, bit for bit; getStates is { h } and starts a decoder", () => {
    const B = 2, T = 6, F = 3;
    // Ending on the GRU's sequence: its outputs are the states themselves (a Dense head's product over n·B rows may
    // round differently for n = T and n = T/2, which is the matmul's business, not the carry's).
    const make = (stateful: boolean) => new Sequential([
      new GRU({ units: 2, inputDim: F, stateful, batchSize: stateful ? B : undefined, returnSequences: true }),
    ], { seed: 4 });
    const x = randomNormal([B, T, F], { seed: 6 });
    const whole = make(false).predict(x);
    const split = make(true);
    const p1 = split.predict(steps(x, 0, T / 2));
    const states = split.getStates();
    expect(Object.keys(states[0]!)).toEqual(["h"]);
    const p2 = split.predict(steps(x, T / 2, T));
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let j = 0; j < 2; j++) {
      const got = t < T / 2 ? p1.data[(b * (T / 2) + t) * 2 + j] : p2.data[(b * (T / 2) + t - T / 2) * 2 + j];
      expect(got).toBe(whole.data[(b * T + t) * 2 + j]);
    }
    // The first half's final state, given to a stateless model, continues the sequence the same way.
    const decoder = make(false);
    const d2 = decoder.predict(steps(x, T / 2, T), { initialStates: states });
    expect(Array.from(d2.data)).toEqual(Array.from(p2.data));
    // A GRU's state has no c: { h, c } is refused by name.
    expect(() => decoder.predict(x, { initialStates: [{ h: states[0]!.h, c: states[0]!.h }] })).toThrow(/initialStates\[0\]: unknown state "c" \(a GRU layer has \{ h \}\)/);
  });

  it("truncated BPTT, k1 < k2 < T, masked steps, GRU → LSTM: each window's gradient is computeGradients over its reach from the state there", () => {
    const B = 3, T = 10, F = 2, k1 = 2, k2 = 5;
    const layers = (stateful: boolean) => [
      new Masking({ maskValue: 0 }), new GRU({ units: 4, inputDim: F, returnSequences: true, stateful, batchSize: stateful ? B : undefined }),
      new GRU({ units: 3, resetAfter: false, stateful, batchSize: stateful ? B : undefined }), new Dense({ units: 1, activation: "sigmoid" }),
    ];
    const m = new Sequential(layers(false), { seed: 3 });
    m.compile({ optimizer: "sgd", loss: "binaryCrossentropy" });
    const x = masked(randomNormal([B, T, F], { seed: 4 }), [[0, 0], [0, 3], [1, 2], [1, 5], [2, 4], [2, 6], [0, 8], [1, 9]]);
    const y = randomNormal([B, 1], { seed: 5 });
    for (let k = 0; k < y.data.length; k++) y.data[k] = y.data[k]! > 0 ? 1 : 0;
    expectWindowsMatchTwin(m, new Sequential(layers(true), { seed: 8 }), x, y, k1, k2);
  });

  it("truncated BPTT refuses a backwards GRU by name", () => {
    const m = new Sequential([new GRU({ units: 2, inputDim: 1, goBackwards: true }), new Dense({ units: 1 })]);
    m.compile({ optimizer: "sgd", loss: "mse" });
    expect(() => new TruncatedBPTT(m, { windowLength: 2 }).trainSequence(randomNormal([1, 4, 1]), randomNormal([1, 1]))).toThrow(/goBackwards/);
  });

  it("both backends agree (loss, gradients, dL/dx) to 1e-12, and Adam steps in float32 to 1e-4", () => {
    const make = (backend: Backend, dtype: "float32" | "float64") => {
      const m = new Sequential([
        new Embedding({ inputDim: 7, outputDim: 3, maskZero: true }), new GRU({ units: 5, returnSequences: true }), new GRU({ units: 4, resetAfter: false }), new Dense({ units: 3, activation: "softmax" }),
      ], { dtype, seed: 21, backend });
      m.compile({ optimizer: "adam", loss: "sparseCategoricalCrossentropy" });
      return m;
    };
    const ids = ndarray(Float64Array.from([1, 4, 6, 0, 2, 3, 3, 0, 5, 1, 0, 0, 2, 6, 4, 1, 6, 5, 2, 3]), [4, 5]) as Tensor;
    const y = ndarray(Float64Array.from([0, 2, 1, 2]), [4, 1]) as Tensor;
    const a = make("js", "float64").computeGradients(ids, y), b = make("wasm", "float64").computeGradients(ids, y);
    expect(maxRel([a.loss], [b.loss])).toBeLessThan(1e-12);
    expect(maxRel(flat(a.grads), flat(b.grads), 1e-8)).toBeLessThan(1e-10);
    const s = make("js", "float32"), w = make("wasm", "float32");
    for (let k = 0; k < 3; k++) { s.trainOnBatch(ids, y); w.trainOnBatch(ids, y); }
    expect(maxRel(flat(w.getWeights()), flat(s.getWeights()), 1e-3)).toBeLessThan(1e-4);
  });
});

describe("a GRU travels", () => {
  it("checkpoints: save → load is bit for bit (weights, optimizer, carried state), and training resumes the same", () => {
    const make = () => {
      const m = new Sequential([new GRU({ units: 4, inputDim: 2, stateful: true, batchSize: 2, resetAfter: false, recurrentActivation: "hardSigmoid", dropout: 0.2 }), new Dense({ units: 1 })], { seed: 6 });
      m.compile({ optimizer: "adam", loss: "mse" });
      return m;
    };
    const x = randomNormal([2, 4, 2], { seed: 1 }), y = randomNormal([2, 1], { seed: 2 });
    const a = make();
    a.trainOnBatch(x, y);
    const b = checkpointFromJSON(JSON.parse(JSON.stringify(checkpointToJSON(a))));
    expect(b.layers[0]).toBeInstanceOf(GRU);
    expect((b.layers[0] as GRU).resetAfter).toBe(false);
    expect(Array.from(b.getStates()[0]!.h.data)).toEqual(Array.from(a.getStates()[0]!.h.data));
    for (let k = 0; k < 3; k++) expect(b.trainOnBatch(x, y).loss).toBe(a.trainOnBatch(x, y).loss);
    expect(Array.from(flat(b.getWeights()))).toEqual(Array.from(flat(a.getWeights())));
  });

  it("safetensors: nn.GRU's keys (gates swapped to PyTorch's r, z, n), both ways bit for bit; resetAfter false refused by name", () => {
    const m = new Sequential([new GRU({ units: 3, inputDim: 2, returnSequences: true }), new GRU({ units: 2 }), new Dense({ units: 1 })], { seed: 9 });
    perturb(m, 5);
    const bytes = toSafetensors(m);
    const back = fromSafetensors(bytes);
    expect(Array.from(flat(back.getWeights()))).toEqual(Array.from(flat(m.getWeights())));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true))));
    expect(Object.keys(header).filter((k) => k.startsWith("gru.0")).sort()).toEqual(["gru.0.bias_hh_l0", "gru.0.bias_ih_l0", "gru.0.weight_hh_l0", "gru.0.weight_ih_l0"]);
    expect(header["gru.0.weight_ih_l0"].shape).toEqual([9, 2]);
    // PyTorch's r block (rows 0 … H−1 of weight_ih) is Keras's second block (columns H … 2H−1 of the kernel).
    const K = m.getWeights()[0]!, off = 8 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true) + header["gru.0.weight_ih_l0"].data_offsets[0];
    const dv = new DataView(bytes.buffer, bytes.byteOffset + off);
    expect(header["gru.0.weight_ih_l0"].dtype).toBe("F64");
    expect(dv.getFloat64(0, true)).toBe(K.data[0 * 9 + 3]!); // torch (r_0, x_0) = keras (x_0, r_0)
    expect(dv.getFloat64(3 * 2 * 8, true)).toBe(K.data[0 * 9 + 0]!); // torch (z_0, x_0) = keras (x_0, z_0)
    const before = new Sequential([new GRU({ units: 2, inputDim: 1, resetAfter: false }), new Dense({ units: 1 })]);
    expect(() => toSafetensors(before)).toThrow(/GRU with resetAfter: false, which PyTorch's nn.GRU does not compute/);
  });
});

describe("options and orders are checked", () => {
  it("names the option, the expected and the actual value", () => {
    expect(() => new GRU({ units: 0 })).toThrow(/GRU units: expected a positive integer/);
    expect(() => new GRU({ units: 2, resetAfter: "yes" as never })).toThrow(/GRU resetAfter: expected true or false, got "yes"/);
    expect(() => new GRU({ units: 2, recurrentActivation: "relu" as never })).toThrow(/GRU recurrentActivation: expected one of "sigmoid", "hardSigmoid", got "relu"/);
    expect(() => new GRU({ units: 2, dropout: 1 })).toThrow(/GRU dropout: expected a rate in \[0, 1\), got 1/);
    expect(() => new GRU({ units: 2, implementation: 1 } as never)).toThrow(ValueError);
  });

  it("a GRU needs a sequence: after a vector it is refused by the rule, and its layers stay free", () => {
    const g = new GRU({ units: 2 });
    expect(() => new Sequential([new LSTM({ units: 3, inputDim: 1 }), g])).toThrow(/layers\[1\]: a GRU reads a sequence .* \(a recurrent layer below it needs returnSequences: true\)/);
    expect(g.owner).toBeNull();
    expect(() => new Sequential([new LSTM({ units: 3, inputDim: 1, returnSequences: true }), g])).not.toThrow();
  });
});
