/**
 * Default initialisation has Keras's statistics (SEMANTICS.md, "Initializers"): Glorot-uniform kernels
 * with limit sqrt(6 / (fanIn + fanOut)) and a uniform distribution, orthonormal recurrent-kernel rows
 * computed exactly as Keras does (QR of a Gaussian with the sign of diag R), forget bias ones and the
 * other biases zeros, Dense bias zeros; determinism by seed; float32 = float64 rounded.
 */
import { describe, expect, it } from "vitest";
import { Sequential, LSTM, Dense } from "../src/index.js";
import { Rng, orthogonal, householderQ, glorotUniform } from "../src/init.js";

/** max |(M Mᵀ - I)_ij| for M (r, c) row-major: rows orthonormal when ~0. */
function rowGramError(M: ArrayLike<number>, r: number, c: number): number {
  let worst = 0;
  for (let i = 0; i < r; i++) {
    for (let j = i; j < r; j++) {
      let s = 0;
      for (let k = 0; k < c; k++) s += M[i * c + k]! * M[j * c + k]!;
      worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
    }
  }
  return worst;
}

/** The transpose of M (r, c). */
function transpose(M: ArrayLike<number>, r: number, c: number): Float64Array {
  const out = new Float64Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = M[i * c + j]!;
  return out;
}

/** Glorot-uniform statistics of n draws in [-l, l]: bounds, mean, variance l²/3, flat histogram (5σ each). */
function expectGlorot(name: string, w: ArrayLike<number>, fanIn: number, fanOut: number): void {
  const n = w.length, l = Math.sqrt(6 / (fanIn + fanOut));
  let mean = 0, sq = 0, maxAbs = 0;
  const bins = new Array(10).fill(0);
  for (let i = 0; i < n; i++) {
    const v = w[i]!;
    mean += v; sq += v * v; maxAbs = Math.max(maxAbs, Math.abs(v));
    bins[Math.min(9, Math.floor(((v + l) / (2 * l)) * 10))]++;
  }
  mean /= n;
  const variance = sq / n - mean * mean;
  expect(maxAbs, `${name}: every |w| ≤ limit ${l}`).toBeLessThanOrEqual(l);
  if (n >= 10_000) {
    // The limit itself, not a smaller one: with 10⁴+ draws the largest lies within 0.1% of l.
    expect(maxAbs, `${name}: the largest |w| reaches the limit`).toBeGreaterThan(0.999 * l);
    expect(Math.abs(mean), `${name}: mean ≈ 0`).toBeLessThan(5 * l / Math.sqrt(3 * n));
    // Var(w²) = E w⁴ - (E w²)² = l⁴/5 - l⁴/9 = 4l⁴/45.
    expect(Math.abs(variance - l * l / 3), `${name}: variance ≈ l²/3`).toBeLessThan(5 * Math.sqrt(4 / 45) * l * l / Math.sqrt(n));
    const e = n / 10, sd = Math.sqrt(n * 0.1 * 0.9);
    for (let b = 0; b < 10; b++) expect(Math.abs(bins[b] - e), `${name}: histogram bin ${b} (uniform)`).toBeLessThan(5 * sd);
  }
}

describe("default initialisation of a large model (H=256, I=128)", () => {
  const H = 256, I = 128, G = 4 * H, D = 3;
  const model = new Sequential([new LSTM({ units: H, inputDim: I }), new Dense({ units: D })], { seed: 11 });
  const [kernel, recurrent, bias, dKernel, dBias] = model.getWeights();

  it("LSTM kernel [I, 4H]: Glorot uniform with fanIn = I, fanOut = 4H", () => {
    expect(kernel!.shape).toEqual([I, G]);
    expectGlorot("kernel", kernel!.data, I, G);
  });

  it("recurrentKernel [H, 4H]: orthonormal rows, R·Rᵀ = I to 1e-12", () => {
    expect(recurrent!.shape).toEqual([H, G]);
    expect(rowGramError(recurrent!.data, H, G)).toBeLessThanOrEqual(1e-12);
    // Orthonormal rows spread over all columns (not a permutation of unit vectors): mean square 1/(4H).
    let nonzero = 0;
    for (const v of recurrent!.data) if (Math.abs(v) > 1e-6) nonzero++;
    expect(nonzero / recurrent!.data.length).toBeGreaterThan(0.99);
  });

  it("bias: the forget block (units H … 2H-1) is ones, the i, c, o blocks zeros", () => {
    expect(bias!.shape).toEqual([G]);
    for (let j = 0; j < G; j++) expect(bias!.data[j], `bias[${j}]`).toBe(j >= H && j < 2 * H ? 1 : 0);
  });

  it("Dense kernel Glorot with fanIn = H, fanOut = D; Dense bias zeros", () => {
    expect(dKernel!.shape).toEqual([H, D]);
    expectGlorot("dense kernel", dKernel!.data, H, D);
    expect(Array.from(dBias!.data)).toEqual([0, 0, 0]);
  });
});

describe("initialisation options and determinism", () => {
  it("unitForgetBias: false gives an all-zero bias", () => {
    const m = new Sequential([new LSTM({ units: 5, inputDim: 2, unitForgetBias: false }), new Dense({ units: 1 })], { seed: 1 });
    expect(Array.from(m.getWeights()[2]!.data)).toEqual(new Array(20).fill(0));
  });

  it("a stacked LSTM's kernel uses fanIn = the lower layer's units; every layer's recurrent rows are orthonormal", () => {
    const m = new Sequential([
      new LSTM({ units: 40, inputDim: 30, returnSequences: true }), new LSTM({ units: 20 }), new Dense({ units: 4 }), new Dense({ units: 1 }),
    ], { seed: 5 });
    const w = m.getWeights();
    expectGlorot("lstm_1 kernel", w[3]!.data, 40, 80);
    expect(w[3]!.shape).toEqual([40, 80]);
    expect(rowGramError(w[1]!.data, 40, 160)).toBeLessThanOrEqual(1e-12);
    expect(rowGramError(w[4]!.data, 20, 80)).toBeLessThanOrEqual(1e-12);
    expectGlorot("dense_0 kernel", w[6]!.data, 20, 4);
    expectGlorot("dense_1 kernel", w[8]!.data, 4, 1);
    expect(Array.from(w[7]!.data)).toEqual([0, 0, 0, 0]);
  });

  it("kernelInitializer / recurrentInitializer options are honoured", () => {
    const m = new Sequential([
      new LSTM({ units: 6, inputDim: 3, kernelInitializer: "zeros", recurrentInitializer: "glorotUniform" }), new Dense({ units: 1 }),
    ], { seed: 2 });
    const [k, r] = m.getWeights();
    expect(Array.from(k!.data).every((v) => v === 0)).toBe(true);
    expectGlorot("recurrent (glorot)", r!.data, 6, 24);
    expect(rowGramError(r!.data, 6, 24)).toBeGreaterThan(1e-2);
  });

  it("the same seed gives identical weights, another seed different ones", () => {
    const make = (seed: number | string) => new Sequential([
      new LSTM({ units: 8, inputDim: 3, returnSequences: true }), new LSTM({ units: 4 }), new Dense({ units: 2 }),
    ], { seed }).getWeights();
    const a = make(42), b = make(42), c = make(43), d = make("42");
    a.forEach((w, i) => {
      expect(Array.from(b[i]!.data), `weights[${i}]`).toEqual(Array.from(w.data));
      expect(Array.from(d[i]!.data), `weights[${i}] with the seed as a string`).toEqual(Array.from(w.data));
    });
    // Every random tensor (not the constant biases) differs in nearly every entry under another seed.
    for (const i of [0, 1, 3, 4, 6]) {
      const same = Array.from(a[i]!.data).filter((v, k) => v === c[i]!.data[k]).length;
      expect(same, `weights[${i}] under seed 43`).toBeLessThan(a[i]!.data.length / 10);
    }
  });

  it("a float32 model gets the float64 model's weights rounded to float32", () => {
    const layers = () => [new LSTM({ units: 16, inputDim: 5, returnSequences: true }), new LSTM({ units: 7 }), new Dense({ units: 2, activation: "sigmoid" })];
    const m64 = new Sequential(layers(), { seed: 9, dtype: "float64" });
    const m32 = new Sequential(layers(), { seed: 9, dtype: "float32" });
    expect(m32.engine.params).toBeInstanceOf(Float32Array);
    expect(Array.from(m32.engine.params)).toEqual(Array.from(Float32Array.from(m64.engine.params)));
    expect(Array.from(m32.engine.params).some((v, k) => v !== m64.engine.params[k])).toBe(true); // really rounded
  });
});

describe("unitForgetBias opens the forget gate, and only that gate", () => {
  it("with zero kernels, c₁ = σ(1)·c₀ and h₁ = σ(0)·tanh(c₁): the ones sit in the forget block", () => {
    for (const unitForgetBias of [true, false]) {
      const m = new Sequential([new LSTM({ units: 3, inputDim: 2, stateful: true, batchSize: 2, unitForgetBias }), new Dense({ units: 1 })], { seed: 5 });
      const [k, r, b, dk, db] = m.getWeights();
      k!.data.fill(0);
      r!.data.fill(0);
      m.setWeights([k!, r!, b!, dk!, db!]); // the bias as initialised
      const c0 = [[1, -2, 0.5], [3, 0.25, -1]];
      m.resetStates([{ h: [[0, 0, 0], [0, 0, 0]], c: c0 }]);
      m.predict([[[0.7, -0.3]], [[1, 2]]]);
      const { h, c } = m.getStates()[0]!;
      const f = unitForgetBias ? 1 / (1 + Math.exp(-1)) : 0.5; // i = o = σ(0) = 0.5 and g = tanh(0) = 0 either way
      c0.flat().forEach((v, j) => {
        expect(c!.data[j]).toBeCloseTo(f * v, 15);
        expect(h.data[j]).toBeCloseTo(0.5 * Math.tanh(f * v), 15);
      });
    }
  });
});

describe("orthogonal / householderQ", () => {
  /** Q (m, n) with orthonormal columns from the Gaussian columns of A (m, n), by Gram–Schmidt run twice
   * (for accuracy): the unique Q with A = Q·R, R upper triangular with a positive diagonal. */
  function gramSchmidt(A: Float64Array, m: number, n: number): Float64Array {
    const Q = A.slice();
    for (let j = 0; j < n; j++) {
      for (let pass = 0; pass < 2; pass++) {
        for (let k = 0; k < j; k++) {
          let s = 0;
          for (let i = 0; i < m; i++) s += Q[i * n + k]! * Q[i * n + j]!;
          for (let i = 0; i < m; i++) Q[i * n + j] = Q[i * n + j]! - s * Q[i * n + k]!;
        }
      }
      let nrm = 0;
      for (let i = 0; i < m; i++) nrm += Q[i * n + j]! ** 2;
      nrm = Math.sqrt(nrm);
      for (let i = 0; i < m; i++) Q[i * n + j] = Q[i * n + j]! / nrm;
    }
    return Q;
  }

  for (const [rows, cols, shape] of [[5, 20, "wide"], [7, 7, "square"], [20, 5, "tall"], [1, 4, "one row"], [4, 1, "one column"]] as const) {
    it(`${shape} (${rows}, ${cols}): Keras's definition (QR of a (max, min) Gaussian, sign of diag R), orthonormal to 1e-12`, () => {
      const out = new Float64Array(rows * cols + 3);
      orthogonal(out, 3, rows, cols, new Rng(`orth/${shape}`));
      const W = out.subarray(3);
      // The same Gaussian draws, orthonormalised independently.
      const m = Math.max(rows, cols), n = Math.min(rows, cols);
      const rng = new Rng(`orth/${shape}`);
      const A = new Float64Array(m * n);
      for (let i = 0; i < m * n; i++) A[i] = rng.normal();
      const Q = gramSchmidt(A, m, n);
      const expected = rows >= cols ? Q : transpose(Q, m, n);
      let diff = 0;
      for (let i = 0; i < rows * cols; i++) diff = Math.max(diff, Math.abs(W[i]! - expected[i]!));
      expect(diff, "equals the Gram–Schmidt Q of the same draws").toBeLessThanOrEqual(1e-12);
      // Orthonormal rows (wide, square) or columns (tall, square).
      if (rows <= cols) expect(rowGramError(W, rows, cols)).toBeLessThanOrEqual(1e-12);
      if (rows >= cols) expect(rowGramError(transpose(W, rows, cols), cols, rows)).toBeLessThanOrEqual(1e-12);
      expect(out.subarray(0, 3).every((v) => v === 0), "nothing written before the offset").toBe(true);
    });
  }

  for (const [m, n, zeroCol] of [[9, 4, -1], [6, 6, -1], [8, 3, 1]] as const) {
    it(`householderQ (${m}, ${n})${zeroCol >= 0 ? " with a zero column" : ""}: QᵀQ = I, A = Q·R with R upper triangular and diag R ≥ 0`, () => {
      const rng = new Rng(`hh/${m}/${n}`);
      const A = new Float64Array(m * n);
      for (let i = 0; i < m * n; i++) A[i] = rng.normal();
      if (zeroCol >= 0) for (let i = 0; i < m; i++) A[i * n + zeroCol] = 0;
      const Q = householderQ(A.slice(), m, n);
      expect(rowGramError(transpose(Q, m, n), n, m)).toBeLessThanOrEqual(1e-12);
      // R = Qᵀ A
      const R = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < m; k++) s += Q[k * n + i]! * A[k * n + j]!;
        R[i * n + j] = s;
      }
      for (let i = 0; i < n; i++) {
        expect(R[i * n + i]!, `diag R[${i}]`).toBeGreaterThanOrEqual(-1e-12);
        for (let j = 0; j < i; j++) expect(Math.abs(R[i * n + j]!), `R[${i}, ${j}] below the diagonal`).toBeLessThanOrEqual(1e-12);
      }
      // Q·R reproduces A.
      let worst = 0;
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += Q[i * n + k]! * R[k * n + j]!;
        worst = Math.max(worst, Math.abs(s - A[i * n + j]!));
      }
      expect(worst).toBeLessThanOrEqual(1e-12);
    });
  }

  it("glorotUniform writes rows·cols values at the offset, within the limit", () => {
    const out = new Float64Array(2 + 12 + 2);
    glorotUniform(out, 2, 3, 4, new Rng("g"));
    const l = Math.sqrt(6 / 7);
    expect([out[0], out[1], out[14], out[15]]).toEqual([0, 0, 0, 0]);
    for (let i = 2; i < 14; i++) {
      expect(Math.abs(out[i]!)).toBeLessThanOrEqual(l);
      expect(out[i]).not.toBe(0);
    }
  });
});
