/**
 * Every kernel in src/tensor/kernels.ts against the naive references in src/tensor/naive.ts.
 *
 * The matmuls take two very different paths (simple loops for small products, the packed 4×3 blocked
 * driver above a size threshold, with K blocks of 256 and M blocks of 128), so the shapes sweep each of
 * M, N, K over 1 … 70 (odd sizes, sizes that are not a multiple of the 4-wide tile, both sides of the
 * threshold) plus a few larger products that cross the K and M block boundaries. Every case uses nonzero
 * offsets and leading dimensions larger than the row, and checks that nothing outside C's rows was written.
 *
 * Tolerance: the blocked kernels add in a different order from the naive triple loop, so they agree to
 * rounding, not bit for bit: |fast - naive| ≤ tol · (Σ_k |a_ik b_kj| + |C_ij|) with tol = 1e-12 in float64
 * (the bound on reordered summation is ~K·2⁻⁵³ ≈ 1e-14 relative to that sum) and 1e-6 in float32.
 */
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import {
  matmulNN, matmulTN, matmulNT, addBiasRows, sumRowsInto, lstmGatesForward, lstmGatesBackward,
  fastSigmoid, fastTanh,
} from "../src/tensor/kernels.js";
import { exp } from "../src/tensor/math.js";
import { naiveMatmul, naiveLstmStep } from "../src/tensor/naive.js";
import { type FloatArray, fromData, tensor, toArray } from "../src/tensor/tensor.js";
import ndarray from "ndarray";
import { makeRng, randInt, fillUniform, uniformArray, project, checkGradients, expectGradientsMatch } from "./helpers/gradcheck.js";
import type { Rng } from "../src/init.js";

type Form = "NN" | "TN" | "NT";
type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;
const DTYPES: [string, Ctor, number][] = [["float64", Float64Array, 1e-12], ["float32", Float32Array, 1e-6]];
const KERNELS = { NN: matmulNN, TN: matmulTN, NT: matmulNT } as const;

/**
 * Runs one case: C (M, N) (+)= op(A) · op(B) with random offsets and padded leading dimensions, against
 * naiveMatmul on copies. Returns a description of the first failure, or "" when everything matches.
 */
function checkMatmul(rng: Rng, form: Form, Arr: Ctor, tol: number, M: number, N: number, K: number, accumulate: boolean): string {
  const transA = form === "TN", transB = form === "NT";
  const aRows = transA ? K : M, aCols = transA ? M : K; // A as stored
  const bRows = transB ? N : K, bCols = transB ? K : N; // B as stored
  const lda = aCols + randInt(rng, 0, 5), ldb = bCols + randInt(rng, 0, 5), ldc = N + randInt(rng, 0, 5);
  const aOff = randInt(rng, 0, 7), bOff = randInt(rng, 0, 7), cOff = randInt(rng, 0, 7);
  const A = new Arr(aOff + aRows * lda + 3), B = new Arr(bOff + bRows * ldb + 3);
  fillUniform(rng, A, 0, A.length);
  fillUniform(rng, B, 0, B.length);
  const C = new Arr(cOff + M * ldc + 3);
  fillUniform(rng, C, 0, C.length); // also the sentinels: entries outside C's rows must survive
  const C0 = C.slice(), ref = C.slice();
  naiveMatmul(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, ref, cOff, ldc, accumulate);
  KERNELS[form](M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc, accumulate);
  for (let p = 0; p < C.length; p++) {
    const q = p - cOff, i = Math.floor(q / ldc), j = q - i * ldc;
    const inside = q >= 0 && i < M && j < N;
    if (!inside) {
      if (C[p] !== C0[p]) return `wrote outside C at flat index ${p} (offset ${cOff}, ldc ${ldc})`;
      continue;
    }
    let scale = accumulate ? Math.abs(C0[p]!) : 0;
    for (let k = 0; k < K; k++) {
      const a = transA ? A[aOff + k * lda + i]! : A[aOff + i * lda + k]!;
      const b = transB ? B[bOff + j * ldb + k]! : B[bOff + k * ldb + j]!;
      scale += Math.abs(a * b);
    }
    const err = Math.abs(C[p]! - ref[p]!);
    if (!(err <= tol * scale + 1e-300)) {
      return `C[${i}, ${j}] = ${C[p]} vs naive ${ref[p]} (error ${err.toExponential(2)}, bound ${(tol * scale).toExponential(2)})`;
    }
  }
  return "";
}

describe("matmulNN / matmulTN / matmulNT against naiveMatmul", () => {
  for (const [dname, Arr, tol] of DTYPES) {
    for (const form of ["NN", "TN", "NT"] as Form[]) {
      it(`${form} ${dname}: each of M, N, K swept over 1 … 70, accumulate false and true`, () => {
        const rng = makeRng(`matmul/${form}/${dname}/sweep`);
        const failures: string[] = [];
        // One side swept, the others at sizes that are and are not multiples of 4 (and on both sides of
        // the small-product threshold once the swept side grows).
        for (const [o1, o2] of [[9, 13], [16, 33]] as const) {
          for (let s = 1; s <= 70; s++) {
            for (const [M, N, K] of [[s, o1, o2], [o1, s, o2], [o1, o2, s]] as const) {
              for (const acc of [false, true]) {
                const f = checkMatmul(rng, form, Arr, tol, M, N, K, acc);
                if (f) failures.push(`M=${M} N=${N} K=${K} accumulate=${acc}: ${f}`);
              }
            }
          }
        }
        expect(failures.slice(0, 5)).toEqual([]);
      });

      it(`${form} ${dname}: random shapes in 1 … 70 and larger ones across the K=256 and M=128 blocks`, () => {
        const rng = makeRng(`matmul/${form}/${dname}/random`);
        const failures: string[] = [];
        const shapes: [number, number, number][] = [];
        for (let n = 0; n < 120; n++) shapes.push([randInt(rng, 1, 70), randInt(rng, 1, 70), randInt(rng, 1, 70)]);
        shapes.push([1, 1, 1], [4, 4, 4], [16, 16, 16], [4, 4, 256], [5, 7, 257]);
        shapes.push([130, 36, 300], [129, 5, 513], [7, 130, 260], [256, 12, 3], [64, 64, 600], [3, 100, 700]);
        for (const [M, N, K] of shapes) {
          for (const acc of [false, true]) {
            const f = checkMatmul(rng, form, Arr, tol, M, N, K, acc);
            if (f) failures.push(`M=${M} N=${N} K=${K} accumulate=${acc}: ${f}`);
          }
        }
        expect(failures.slice(0, 5)).toEqual([]);
      });
    }

    it(`${dname}: a zero-size K overwrites C with zeros, or leaves it when accumulating`, () => {
      // The engine never asks for K = 0, but the contract (C = A·B with an empty sum) should still hold.
      for (const form of ["NN", "TN", "NT"] as Form[]) {
        const A = new Arr(8), B = new Arr(8);
        const C = new Arr([1, 2, 3, 4, 5, 6]);
        KERNELS[form](2, 3, 0, A, 0, 1, B, 0, 3, C, 0, 3, true);
        expect(Array.from(C), `${form} accumulate`).toEqual([1, 2, 3, 4, 5, 6]);
        KERNELS[form](2, 3, 0, A, 0, 1, B, 0, 3, C, 0, 3, false);
        expect(Array.from(C), `${form} overwrite`).toEqual([0, 0, 0, 0, 0, 0]);
      }
    });

    it(`${dname}: the blocked path gives the same answer on repeated calls with other shapes in between (scratch reuse)`, () => {
      const rng = makeRng(`matmul/${dname}/reuse`);
      const mk = (M: number, N: number, K: number) => {
        const A = new Arr(M * K), B = new Arr(K * N), C = new Arr(M * N);
        fillUniform(rng, A, 0, A.length); fillUniform(rng, B, 0, B.length);
        return { A, B, C, run: () => { matmulNT(M, N, K, A, 0, K, B, 0, K, C, 0, N, false); return C.slice(); } };
      };
      const big = mk(40, 24, 300), other = mk(130, 60, 20);
      const first = big.run();
      other.run();
      expect(Array.from(big.run())).toEqual(Array.from(first));
    });
  }
});

describe("addBiasRows / sumRowsInto", () => {
  for (const [dname, Arr] of DTYPES) {
    it(`${dname}: with offsets and leading dimensions, against plain loops`, () => {
      const rng = makeRng(`bias/${dname}`);
      for (const [M, N] of [[1, 1], [3, 5], [17, 40], [64, 9]] as const) {
        const ld = N + 3, yOff = 4, bOff = 2;
        const Y = new Arr(yOff + M * ld + 2), bias = new Arr(bOff + N + 1);
        fillUniform(rng, Y, 0, Y.length); fillUniform(rng, bias, 0, bias.length);
        const Y0 = Y.slice();
        addBiasRows(M, N, Y, yOff, ld, bias, bOff);
        for (let p = 0; p < Y.length; p++) {
          const q = p - yOff, i = Math.floor(q / ld), j = q - i * ld;
          const inside = q >= 0 && i < M && j < N;
          const want = inside ? (Arr === Float32Array ? Math.fround(Y0[p]! + bias[bOff + j]!) : Y0[p]! + bias[bOff + j]!) : Y0[p]!;
          expect(Y[p], `addBiasRows M=${M} N=${N} at ${p}`).toBe(want);
        }
        const dB = new Arr(bOff + N + 1);
        fillUniform(rng, dB, 0, dB.length);
        const dB0 = dB.slice();
        sumRowsInto(M, N, Y0, yOff, ld, dB, bOff);
        for (let j = 0; j < N; j++) {
          let s = dB0[bOff + j]!;
          for (let i = 0; i < M; i++) s += Y0[yOff + i * ld + j]!;
          expect(Math.abs(dB[bOff + j]! - s), `sumRowsInto M=${M} N=${N} column ${j}`).toBeLessThanOrEqual((Arr === Float32Array ? 1e-5 : 1e-13) * (1 + Math.abs(s) + M));
        }
        expect(dB[0]).toBe(dB0[0]);
        expect(dB[bOff + N]).toBe(dB0[bOff + N]);
      }
    });
  }
});

describe("lstmGatesForward / lstmGatesBackward", () => {
  const shapes = [[1, 1], [1, 10], [3, 5], [32, 10], [4, 64]] as const;

  for (const [dname, Arr, tol] of DTYPES) {
    it(`${dname}: forward matches naiveLstmStep (activations in place, c, tanh(c), h) with offsets`, () => {
      const rng = makeRng(`gates/fwd/${dname}`);
      for (const [B, H] of shapes) {
        const G = 4 * H, BH = B * H;
        const zOff = 3, cpOff = 5, cOff = 1, tOff = 2, hOff = 7;
        const z = new Arr(zOff + B * G + 2), cPrev = new Arr(cpOff + BH);
        fillUniform(rng, z, 0, z.length, -4, 4);
        fillUniform(rng, cPrev, 0, cPrev.length, -2, 2);
        const ref = naiveLstmStep(B, H, z.slice(zOff, zOff + B * G), cPrev.slice(cpOff));
        const c = new Arr(cOff + BH + 2), tanhC = new Arr(tOff + BH + 2), h = new Arr(hOff + BH + 2);
        c.fill(9); tanhC.fill(9); h.fill(9);
        const zTail = z[zOff + B * G]!;
        lstmGatesForward(B, H, z, zOff, cPrev, cpOff, c, cOff, tanhC, tOff, h, hOff, false);
        // float32: inputs are float32, the math is double, and every stored value is rounded once.
        const near = (what: string, got: number, want: number) => {
          if (!(Math.abs(got - want) <= tol * (1 + Math.abs(want)))) expect.fail(`B=${B} H=${H} ${what}: ${got} vs ${want}`);
        };
        for (let k = 0; k < B * G; k++) near(`gates[${k}]`, z[zOff + k]!, ref.gates[k]!);
        for (let k = 0; k < BH; k++) {
          near(`c[${k}]`, c[cOff + k]!, ref.c[k]!);
          near(`h[${k}]`, h[hOff + k]!, ref.h[k]!);
          near(`tanhC[${k}]`, tanhC[tOff + k]!, Math.tanh(ref.c[k]!));
        }
        expect(z[zOff + B * G]).toBe(zTail);
        expect([c[0], c[cOff + BH], h[0], h[hOff + BH], tanhC[0], tanhC[tOff + BH]]).toEqual([9, 9, 9, 9, 9, 9]);
      }
    });
  }

  it("float64: backward matches finite differences of the naive step (dz and dL/dc_{t-1})", () => {
    for (const [B, H] of shapes) {
      const rng = makeRng(`gates/bwd/${B}/${H}`);
      const G = 4 * H, BH = B * H;
      const z0 = uniformArray(rng, B * G, -2.5, 2.5);  // (B, G)
      const cPrev = uniformArray(rng, BH, -2, 2);      // (B, H)
      const rh = uniformArray(rng, BH), rc = uniformArray(rng, BH); // L = <rh, h> + <rc, c>
      // The loss through the naive step only: the kernel under test is not used to make the reference.
      const loss = (): number => {
        const s = naiveLstmStep(B, H, z0, cPrev);
        return project(BH, s.h, 0, rh) + project(BH, s.c, 0, rc);
      };
      const gOff = 2, cpOff = 1, tOff = 3, dhOff = 4, dcOff = 5, dzOff = 6;
      const gates = new Float64Array(gOff + B * G); gates.set(z0, gOff);
      const cp = new Float64Array(cpOff + BH); cp.set(cPrev, cpOff);
      const c = new Float64Array(BH), tanhC = new Float64Array(tOff + BH), h = new Float64Array(BH);
      lstmGatesForward(B, H, gates, gOff, cp, cpOff, c, 0, tanhC, tOff, h, 0, false);
      const dh = new Float64Array(dhOff + BH); dh.set(rh, dhOff);
      const dc = new Float64Array(dcOff + BH); dc.set(rc, dcOff);
      const dz = new Float64Array(dzOff + B * G);
      lstmGatesBackward(B, H, gates, gOff, cp, cpOff, tanhC, tOff, dh, dhOff, dc, dcOff, dz, dzOff);
      // Check a spread of entries on the larger shapes to keep the test fast.
      const pick = (n: number) => (n <= 64 ? undefined : Array.from({ length: 64 }, (_, k) => Math.floor((k * n) / 64)));
      const rep = checkGradients(loss, [
        { name: "dz", values: z0, analytic: dz.subarray(dzOff), indices: pick(B * G) },
        { name: "dcPrev", values: cPrev, analytic: dc.subarray(dcOff), indices: pick(BH) },
      ]);
      expectGradientsMatch(`gates B=${B} H=${H}`, rep, 1e-6);
    }
  });

  it("float32: backward matches the float64 backward to float32 rounding", () => {
    const rng = makeRng("gates/bwd/f32");
    const B = 5, H = 7, G = 4 * H, BH = B * H;
    const run = (Arr: Ctor, src: { z: Float64Array; cp: Float64Array; dh: Float64Array; dc: Float64Array }) => {
      const z = Arr.from(src.z), cp = Arr.from(src.cp), dh = Arr.from(src.dh), dc = Arr.from(src.dc);
      const c = new Arr(BH), tanhC = new Arr(BH), h = new Arr(BH), dz = new Arr(B * G);
      lstmGatesForward(B, H, z, 0, cp, 0, c, 0, tanhC, 0, h, 0, false);
      lstmGatesBackward(B, H, z, 0, cp, 0, tanhC, 0, dh, 0, dc, 0, dz, 0);
      return { dz: dz as FloatArray, dc: dc as FloatArray };
    };
    const rnd = (n: number, s: number) => Float64Array.from(uniformArray(rng, n, -s, s), Math.fround);
    const src = { z: rnd(B * G, 3), cp: rnd(BH, 2), dh: rnd(BH, 1), dc: rnd(BH, 1) };
    const a = run(Float32Array, src), b = run(Float64Array, src);
    for (let k = 0; k < B * G; k++) expect(Math.abs(a.dz[k]! - b.dz[k]!), `dz[${k}]`).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(b.dz[k]!)));
    for (let k = 0; k < BH; k++) expect(Math.abs(a.dc[k]! - b.dc[k]!), `dc[${k}]`).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(b.dc[k]!)));
  });
});

describe("exp (tensor/math.ts), fastSigmoid / fastTanh (the gate activations)", () => {
  /** Units in the last place of the correctly rounded value y (its binade's spacing; 2^-1074 for subnormals). */
  const ulpOf = (y: number): number => {
    const a = Math.abs(y);
    return a < 2 ** -1022 ? 2 ** -1074 : 2 ** (Math.floor(Math.log2(a)) - 52);
  };
  const ulps = (got: number, want: number): number => (got === want ? 0 : !Number.isFinite(want) || !Number.isFinite(got) ? Infinity : Math.abs(got - want) / ulpOf(want));
  // Correctly rounded references from mpmath at 200 bits (test/fixtures/mpmath_activations.py): uniform
  // draws over each function's whole range, log-uniform magnitudes down to 1e-300, dense runs at the edges.
  const fx = JSON.parse(readFileSync(new URL("./fixtures/activations_mpmath.json", import.meta.url), "utf8"));
  const f64 = (b64: string): Float64Array => { const u = Buffer.from(b64, "base64"); return new Float64Array(u.buffer, u.byteOffset, u.length / 8); };
  const worstOver = (name: string, f: (x: number) => number): { worst: number; at: number; n: number } => {
    const xs = f64(fx[name].x), ys = f64(fx[name].y);
    let worst = 0, at = NaN;
    xs.forEach((x, i) => { const u = ulps(f(x), ys[i]!); if (u > worst) { worst = u; at = x; } });
    return { worst, at, n: xs.length };
  };

  it("are within 1 (exp) and 3 (σ, tanh) ulp of the correctly rounded values over their whole range", () => {
    const e = worstOver("exp", exp), s = worstOver("sigmoid", fastSigmoid), t = worstOver("tanh", fastTanh);
    console.log(`true ulps against mpmath: exp ${e.worst.toFixed(2)} (${e.n} points), σ ${s.worst.toFixed(2)} at ${s.at} (${s.n}), tanh ${t.worst.toFixed(2)} at ${t.at} (${t.n})`);
    expect(e.worst).toBeLessThanOrEqual(1);
    expect(s.worst).toBeLessThanOrEqual(3);
    expect(t.worst).toBeLessThanOrEqual(3);
  });

  it("the edges: exp finite up to its overflow, σ exact through the subnormal tail", () => {
    // exp(709.78) is 1.79e308, finite; an earlier version overflowed in (709.7773, 709.78].
    for (const x of [709.7773, 709.778, 709.78, 709.7827]) {
      expect(Number.isFinite(exp(x)), `exp(${x})`).toBe(true);
      expect(ulps(exp(x), Math.exp(x))).toBeLessThanOrEqual(1);
    }
    expect(exp(709.783)).toBe(Infinity);
    // σ(x) = e^x to double precision down there: 5.6e-309 at -709.78 (it gave 0 from -709.7773 down), the
    // smallest subnormal near -745, and 0 only where e^x rounds to 0.
    for (const x of [-709.7773, -709.78, -709.79, -720, -744.44]) {
      const want = exp(x);
      expect(want).toBeGreaterThan(0);
      expect(fastSigmoid(x), `σ(${x})`).toBe(want);
    }
    expect(fastSigmoid(-745.1)).toBe(5e-324);
    expect(fastSigmoid(-746)).toBe(0);
  });

  it("handle the special values like Math does", () => {
    expect(exp(0)).toBe(1);
    expect(exp(Infinity)).toBe(Infinity);
    expect(exp(-Infinity)).toBe(0);
    expect(exp(800)).toBe(Infinity);
    expect(exp(-800)).toBe(0);
    expect(exp(NaN)).toBeNaN();
    expect(fastSigmoid(0)).toBe(0.5);
    expect(fastSigmoid(Infinity)).toBe(1);
    expect(fastSigmoid(50)).toBe(1);
    expect(fastSigmoid(-Infinity)).toBeLessThan(1e-300);
    expect(fastSigmoid(NaN)).toBeNaN();
    expect(Math.abs(fastTanh(0))).toBe(0);
    expect(fastTanh(Infinity)).toBe(1);
    expect(fastTanh(-Infinity)).toBe(-1);
    expect(fastTanh(30)).toBe(1);
    expect(fastTanh(-1e300)).toBe(-1);
    expect(fastTanh(1e-300)).toBe(1e-300);
    expect(fastTanh(NaN)).toBeNaN();
  });

  it("the gate kernel saturates cleanly at extreme pre-activations, like the naive step", () => {
    const B = 2, H = 3, G = 4 * H;
    const z0 = Float64Array.from({ length: B * G }, (_, k) => [1000, -1000, 40, -40, 1e-12, -745.5, 710, 0][k % 8]!);
    const cPrev = Float64Array.from([1e3, -1e3, 0, 2, -2, 0.5]);
    const z = z0.slice(), c = new Float64Array(B * H), tanhC = new Float64Array(B * H), h = new Float64Array(B * H);
    lstmGatesForward(B, H, z, 0, cPrev, 0, c, 0, tanhC, 0, h, 0, false);
    const ref = naiveLstmStep(B, H, z0, cPrev);
    for (let k = 0; k < B * G; k++) expect(Math.abs(z[k]! - ref.gates[k]!), `gate ${k}`).toBeLessThanOrEqual(1e-15);
    for (let k = 0; k < B * H; k++) {
      expect(Math.abs(c[k]! - ref.c[k]!), `c ${k}`).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(ref.c[k]!)));
      expect(Math.abs(h[k]! - ref.h[k]!), `h ${k}`).toBeLessThanOrEqual(1e-15);
    }
  });
});

describe("fromData: ndarray's own views, built without ndarray()", () => {
  for (const [dname, Arr] of DTYPES) {
    it(`${dname}: ranks 1–4 (and empty shapes) equal ndarray(data, shape): class, shape, stride, offset, dtype, size, values`, () => {
      for (const shape of [[5], [2, 3], [4, 1, 3], [2, 3, 1, 2], [0, 4], [3, 0, 2]]) {
        const n = shape.reduce((a, b) => a * b, 1);
        const data = new Arr(n).map((_, i) => i + 0.5);
        const a = fromData(data, shape), b = ndarray(data, shape.slice()) as unknown as typeof a;
        expect(a.constructor, `shape ${shape}`).toBe(b.constructor);
        expect([a.shape, a.stride, a.offset, a.dtype, a.size, a.dimension]).toEqual([b.shape, b.stride, b.offset, b.dtype, b.size, b.dimension]);
        expect(a.data).toBe(data);
        if (n > 0) {
          const last = shape.map((d) => d - 1);
          expect(a.get(...last)).toBe(data[n - 1]);
          expect(a.pick(0).size).toBe(n / shape[0]!);
        }
      }
      expect(() => fromData(new Arr(5), [2, 3])).toThrow(/data of length 5 does not fill shape \[2, 3\]/);
    });
  }
});

describe("tensor(values, shape, dtype?): TensorFlow.js's form", () => {
  it("flat arrays, typed arrays and nested arrays in row-major order, laid out in the shape; the old tensor(values, dtype) unchanged", () => {
    const t = tensor([1, 2, 3, 4, 5, 6], [1, 3, 2]);
    expect(t.shape).toEqual([1, 3, 2]);
    expect(t.dtype).toBe("float64");
    expect(toArray(t)).toEqual([[[1, 2], [3, 4], [5, 6]]]);
    const f = tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3], "float32");
    expect([f.dtype, f.get(1, 0)]).toEqual(["float32", 4]);
    expect(toArray(tensor(new Int32Array([7, 8, 9, 10]), [2, 2]))).toEqual([[7, 8], [9, 10]]);
    expect(toArray(tensor([[1, 2, 3], [4, 5, 6]], [3, 2]))).toEqual([[1, 2], [3, 4], [5, 6]]); // nested, reshaped as tfjs does
    const src = new Float64Array([1, 2, 3]);
    const copy = tensor(src, [3]);
    src[0] = 9;
    expect(copy.get(0)).toBe(1);                                             // a copy, as tensor(values) makes
    expect(tensor([1, 2, 3], "float32").dtype).toBe("float32");
    expect(tensor([[1], [2]]).shape).toEqual([2, 1]);
    expect(tensor([], [0, 4]).shape).toEqual([0, 4]);
  });

  it("refuses what does not fit, naming the argument and the counts", () => {
    expect(() => tensor([1, 2, 3, 4, 5], [1, 3, 2])).toThrow(/tensor values: shape \[1, 3, 2\] holds 6 values, got 5/);
    expect(() => tensor([1, 2], [2, -1])).toThrow(/tensor shape: expected an array of non-negative integers like \[2, 10, 3\], got \[2, -1\]/);
    expect(() => tensor([1, 2], [2.5] as number[])).toThrow(/tensor shape/);
    expect(() => tensor([1, 2], "float16" as never)).toThrow(/dtype: expected "float32" or "float64", got "float16"/);
    expect(() => tensor([1, 2], [2], "int32" as never)).toThrow(/dtype: expected "float32" or "float64", got "int32"/);
    expect(() => tensor([1, 2], "float32", "float64")).toThrow(/a dtype as the second argument and another as the third/);
    expect(() => tensor([1, [2]] as never, [2])).toThrow(/values/);
  });
});
