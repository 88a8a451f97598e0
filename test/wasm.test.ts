/**
 * The WebAssembly SIMD GEMM (src/wasm/gemm.ts, emitted by src/wasm/assembler.ts) against the naive reference:
 * bit-identical results (the same summation order), every edge of the 4×4 tiling, leading dimensions larger
 * than the rows, offsets into the memory, accumulate or overwrite, and nothing outside C written.
 */
import { setFlagsFromString } from "node:v8";
import { describe, expect, it } from "vitest";
import {
  type Form, type Gemm, type WasmMemory, HOLD_NEW, HOLD_SAME, KC_TN, PANEL_BYTES, createGemm32, createGemm64, createMemory, gemmModule, relaxedSimd,
  validModule,
} from "../src/wasm/gemm.js";
import { naiveMatmul } from "../src/tensor/naive.js";
import {
  addBiasRows, clear, fastSigmoid, fastTanh, gatesBackPlan, gatesPlan, gemmPlan, lstmGatesBackward, lstmGatesForward, lstmRecurrence, lstmRecurrenceBackward,
  matmulNN, matmulNT, matmulTN2, sumRowsInto, SMALL_PRODUCT,
} from "../src/tensor/kernels.js";
import { WasmArena, adamFor, copyFor, mixFor, zeroFor } from "../src/wasm/arena.js";
import { clearRange, copyRange } from "../src/tensor/kernels.js";
import { COPY_IN_SIMD } from "../src/tensor/bias.js";
import { Sequential, LSTM, Dense, Adam } from "../src/index.js";
import { makeRng, uniformArray } from "./helpers/gradcheck.js";

/**
 * Every form twice: the product without a scratch region (the tiles read B where it is; Aᵀ·B and A·Bᵀ in their
 * own tiles), and with one, as a model's arena gives it (B packed in strips, A·Bᵀ through the A·B tiles on a
 * packed Bᵀ, float32 Aᵀ·B on a transposed A). The scratch region lies past everything the tests compare.
 */
function withAndWithoutPacking(create: typeof createGemm64, memory: WasmMemory): [Gemm, Form][] {
  const at = 2 << 20, size = 1 << 20; // bytes 2 MiB … 3 MiB of the 4 MiB memory, and 3 … 4 MiB for a held B
  const scratch = (bytes: number, region: 0 | 1): number => {
    if (bytes > size) throw new Error(`scratch of ${bytes} bytes asked for`);
    return at + region * size;
  };
  const plain = create(memory), packed = create(memory, undefined, scratch);
  const out: [Gemm, Form][] = [];
  for (const gemm of [plain, packed]) for (const form of ["NN", "TN", "NT"] as const) out.push([gemm, form]);
  return out;
}

/**
 * Random operands for op(A)·op(B) in `f`: A, B and C at offsets with gaps between, leading dimensions padded
 * past the rows (A (M, K), or (K, M) for TN; B (K, N), or (N, K) for NT; C (M, N)); zeros around them.
 */
function layOut(f: Float32Array | Float64Array, form: Form, M: number, N: number, K: number, rng: ReturnType<typeof makeRng>) {
  const ta = form === "TN", tb = form === "NT";
  const aRows = ta ? K : M, aCols = ta ? M : K, bRows = tb ? N : K, bCols = tb ? K : N;
  const lda = aCols + 1, ldb = bCols + 2, ldc = N + 3;
  const aOff = 3, bOff = aOff + aRows * lda + 5, cOff = bOff + bRows * ldb + 1, end = cOff + M * ldc + 4;
  f.fill(0, 0, end + 8);
  f.set(uniformArray(rng, aRows * lda, -1, 1), aOff);
  f.set(uniformArray(rng, bRows * ldb, -1, 1), bOff);
  f.set(uniformArray(rng, M * ldc + 4, -1, 1), cOff);
  return { lda, ldb, ldc, aOff, bOff, cOff, end };
}

/**
 * One product checked whole: op(A) and op(B) laid out with padded leading dimensions at offsets into the memory
 * (`f` views it), C random; the reference sums each entry in k order from zero, rounding every product and sum
 * with `fr` (Math.fround for float32, the identity for float64), and adds C at the end when accumulating, as
 * the kernels do (float64: naiveMatmul). Every element of the region (C, the operands and the gaps around them)
 * must match bit for bit.
 */
function checkProduct(
  f: Float32Array | Float64Array, gemm: Gemm, form: Form, M: number, N: number, K: number, accumulate: boolean,
  rng: ReturnType<typeof makeRng>, label: string,
): void {
  const fr = Math.fround, w = f.BYTES_PER_ELEMENT;
  const ta = form === "TN", tb = form === "NT";
  const { lda, ldb, ldc, aOff, bOff, cOff, end } = layOut(f, form, M, N, K, rng);
  const want = f.slice(0, end + 8);
  // float64: the library's own reference (src/tensor/naive.ts); float32: the same loop rounding as it goes.
  if (want instanceof Float64Array) naiveMatmul(ta, tb, M, N, K, want, aOff, lda, want, bOff, ldb, want, cOff, ldc, accumulate);
  else for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let sum = 0;
      for (let k = 0; k < K; k++) {
        const a = ta ? want[aOff + k * lda + i]! : want[aOff + i * lda + k]!;
        const b = tb ? want[bOff + j * ldb + k]! : want[bOff + k * ldb + j]!;
        sum = fr(sum + fr(a * b));
      }
      const q = cOff + i * ldc + j;
      want[q] = accumulate ? fr(want[q]! + sum) : sum;
    }
  }
  gemm(form, M, N, K, w * aOff, lda, w * bOff, ldb, w * cOff, ldc, accumulate);
  const got = f.slice(0, end + 8);
  for (let q = 0; q < got.length; q++) {
    if (!Object.is(got[q], want[q])) expect.fail(`${label} ${form} M=${M} N=${N} K=${K} acc=${accumulate}: element ${q}: ${got[q]} vs ${want[q]}`);
  }
}

describe("WebAssembly SIMD GEMM, float64", () => {
  it("is a valid module in this runtime", () => {
    expect(validModule(gemmModule({ pages: 1 }))).toBe(true);
  });

  it("C = op(A)·op(B) and C += op(A)·op(B), every form, bit for bit as the naive loop, over shapes around the 4×4 tile, with strides and offsets", () => {
    const memory = createMemory(64); // 4 MiB
    const f = new Float64Array(memory.buffer);
    const rng = makeRng("wasm/gemm");
    let cases = 0;
    for (const [gemm, form] of withAndWithoutPacking(createGemm64, memory)) {
      for (const M of [1, 3, 4, 5, 8, 13]) {
        for (const N of [1, 2, 4, 6, 9, 16]) {
          for (const K of [1, 3, 8, 33]) {
            for (const accumulate of [false, true]) {
              checkProduct(f, gemm, form, M, N, K, accumulate, rng, "float64");
              cases++;
            }
          }
        }
      }
    }
    expect(cases).toBe(2 * 864);
  });

  it("float32: every form bit for bit as a naive loop that rounds each product and sum to float32, around the 4×8 tile", () => {
    const memory = createMemory(64);
    const f = new Float32Array(memory.buffer);
    const rng = makeRng("wasm/gemm32");
    let cases = 0;
    for (const [gemm, form] of withAndWithoutPacking(createGemm32, memory)) {
      for (const M of [1, 4, 5, 9]) {
        for (const N of [1, 7, 8, 10, 13, 16]) {
          for (const K of [1, 5, 40]) {
            for (const accumulate of [false, true]) {
              checkProduct(f, gemm, form, M, N, K, accumulate, rng, "float32");
              cases++;
            }
          }
        }
      }
    }
    expect(cases).toBe(2 * 432);
  });

  it(`with packing: B in several panels of strips (${PANEL_BYTES / 1024} KiB each), remainders in rows and columns, bit for bit as the naive loop`, () => {
    const memory = createMemory(64);
    let cases = 0;
    for (const dtype of ["float64", "float32"] as const) {
      const f32 = dtype === "float32";
      const f = f32 ? new Float32Array(memory.buffer) : new Float64Array(memory.buffer);
      const rng = makeRng(`wasm/gemm-panels/${dtype}`);
      // K = 250: a panel holds P columns (64 in float64, 128 in float32 at 128 KiB), so N = 2P + 11 makes three
      // panels, the last ragged, and N = 2P two whole ones.
      const K = 250, cols = f32 ? 8 : 4, P = Math.floor(PANEL_BYTES / ((f32 ? 4 : 8) * K * cols)) * cols;
      for (const [gemm, form] of withAndWithoutPacking(f32 ? createGemm32 : createGemm64, memory).slice(3)) {
        for (const [M, N] of [[13, 2 * P + 11], [8, 2 * P], [3, 2 * P + 11]] as const) {
          for (const accumulate of [false, true]) {
            checkProduct(f, gemm, form, M, N, K, accumulate, rng, dtype);
            cases++;
          }
        }
      }
    }
    expect(cases).toBe(2 * 3 * 3 * 2);
  });

  it("a held B (the recurrent kernel in a loop): packed once by HOLD_NEW, reused by HOLD_SAME, packed afresh when B, its shape or form differ; the tiles (12 rows) and the rows kernel (1 and 3 rows) alike", () => {
    for (const M of [12, 1, 3]) for (const dtype of ["float64", "float32"] as const) {
      const memory = createMemory(64);
      const f32 = dtype === "float32", w = f32 ? 4 : 8;
      const f = f32 ? new Float32Array(memory.buffer) : new Float64Array(memory.buffer);
      const [[plain], [packed]] = [withAndWithoutPacking(f32 ? createGemm32 : createGemm64, memory)[0]!, withAndWithoutPacking(f32 ? createGemm32 : createGemm64, memory)[3]!];
      const rng = makeRng(`wasm/gemm-hold/${dtype}`);
      // A (M, K) at 0; B1 and B2 (K, N) or (N, K); C at cOff; the plain product's C at dOff. K·N·w > 2 panels' bytes,
      // and N mod 8 = 2: the rows kernel's partial strip in A·Bᵀ (held with its packing), the edge in A·B.
      const N = 1002, K = 40, a = 0, b1 = M * K, b2 = b1 + K * N, cOff = b2 + K * N, dOff = cOff + M * N;
      f.set(uniformArray(rng, cOff, -1, 1), 0);
      const check = (form: Form, b: number, hold: 0 | 1 | 2, what: string): void => {
        const ldb = form === "NT" ? K : N;
        packed(form, M, N, K, w * a, K, w * b, ldb, w * cOff, N, false, hold);
        plain(form, M, N, K, w * a, K, w * b, ldb, w * dOff, N, false);
        for (let q = 0; q < M * N; q++) if (!Object.is(f[cOff + q], f[dOff + q])) expect.fail(`${dtype} M=${M} ${what}: C[${q}] ${f[cOff + q]} vs ${f[dOff + q]}`);
      };
      for (const form of ["NN", "NT"] as const) {
        check(form, b1, HOLD_NEW, `${form} new`);
        check(form, b1, HOLD_SAME, `${form} same`);
        check(form, b2, HOLD_SAME, `${form} another B`);
        check(form, b1, HOLD_SAME, `${form} back to the first B`);
        f[b1 + 5] = f[b1 + 5]! + 1; // B changes (as after an update): the next loop starts with HOLD_NEW
        check(form, b1, HOLD_NEW, `${form} B changed, new`);
      }
      check("NN", b1, HOLD_NEW, "NN");
      check("NT", b1, HOLD_SAME, "NT after NN on the same B");
      // HOLD_SAME reuses the packing without looking at B: changing B in between shows that it did reuse. (The rows
      // kernel reads A·B's B where it is, unpacked: there A·Bᵀ shows it.)
      const form: Form = M < 4 ? "NT" : "NN", ldb = form === "NT" ? K : N;
      check(form, b2, HOLD_NEW, `${form} new on B2`);
      const keep = f[b2]!;
      f[b2] = keep + 1;
      packed(form, M, N, K, w * a, K, w * b2, ldb, w * cOff, N, false, HOLD_SAME);
      f[b2] = keep;
      plain(form, M, N, K, w * a, K, w * b2, ldb, w * dOff, N, false);
      for (let q = 0; q < M * N; q++) if (!Object.is(f[cOff + q], f[dOff + q])) expect.fail(`${dtype} M=${M} reuse: C[${q}] ${f[cOff + q]} vs ${f[dOff + q]}`);
    }
  });

  it(`Aᵀ·B with K > ${KC_TN} is cut into K blocks: bit for bit as naive sums block by block, each added into C; to rounding as one sum`, () => {
    const memory = createMemory(64);
    let cases = 0;
    for (const dtype of ["float64", "float32"] as const) {
      const f32 = dtype === "float32", bytes = f32 ? 4 : 8, fr = f32 ? Math.fround : (v: number) => v;
      const f = f32 ? new Float32Array(memory.buffer) : new Float64Array(memory.buffer);
      const rng = makeRng(`wasm/gemm-kblocks/${dtype}`);
      for (const [gemm] of withAndWithoutPacking(f32 ? createGemm32 : createGemm64, memory).filter(([, form]) => form === "TN")) {
      for (const [M, N, K] of [[8, 16, 257], [5, 9, 2 * KC_TN], [12, 19, 2 * KC_TN + 77]] as const) {
        for (const accumulate of [false, true]) {
          // A (K, M), B (K, N), C (M, N), leading dimensions padded.
          const { lda, ldb, ldc, aOff, bOff, cOff, end } = layOut(f, "TN", M, N, K, rng);
          const want = f.slice(0, end + 8), before = f.slice(0, end + 8);
          for (let i = 0; i < M; i++) {
            for (let j = 0; j < N; j++) {
              const q = cOff + i * ldc + j;
              let whole = 0, scale = Math.abs(before[q]!);
              for (let k0 = 0; k0 < K; k0 += KC_TN) {
                let s = 0;
                for (let k = k0; k < Math.min(K, k0 + KC_TN); k++) {
                  const p = want[aOff + k * lda + i]! * want[bOff + k * ldb + j]!;
                  s = fr(s + fr(p));
                  whole += p;
                  scale += Math.abs(p);
                }
                want[q] = k0 === 0 && !accumulate ? s : fr(want[q]! + s);
              }
              // One sum in float64 over all of K: the blocks change the order of additions only.
              const exact = (accumulate ? before[q]! : 0) + whole;
              if (!(Math.abs(want[q]! - exact) <= (f32 ? 1e-6 : 1e-14) * scale)) expect.fail(`${dtype} reference C[${i}, ${j}] ${want[q]} vs ${exact}`);
            }
          }
          gemm("TN", M, N, K, bytes * aOff, lda, bytes * bOff, ldb, bytes * cOff, ldc, accumulate);
          const got = f.slice(0, end + 8);
          for (let q = 0; q < got.length; q++) {
            if (!Object.is(got[q], want[q])) expect.fail(`${dtype} M=${M} N=${N} K=${K} acc=${accumulate}: element ${q}: ${got[q]} vs ${want[q]}`);
          }
          cases++;
        }
      }
      }
    }
    expect(cases).toBe(2 * 12);
  });

  it("Aᵀ·B with a second A (dKernel and dRecurrentKernel from one dZ): bit for bit as the two products one after the other, K blocks and edges included, nothing else written", () => {
    const memory = createMemory(64);
    let cases = 0;
    for (const dtype of ["float64", "float32"] as const) {
      const f32 = dtype === "float32", w = f32 ? 4 : 8;
      const f = f32 ? new Float32Array(memory.buffer) : new Float64Array(memory.buffer);
      const rng = makeRng(`wasm/gemm-tn2/${dtype}`);
      for (const [gemm] of withAndWithoutPacking(f32 ? createGemm32 : createGemm64, memory).filter(([, form]) => form === "TN")) {
        // (M1 = 1: an LSTM over one feature; 3 + 6: a tile straddling the two A's; K 300 and 600: K blocks)
        for (const [M1, M2, N, K] of [[1, 8, 16, 7], [3, 6, 13, 40], [5, 7, 24, 300], [8, 12, 19, 600]] as const) {
          for (const accumulate of [false, true]) {
            // A1 (K, M1), A2 (K, M2), B (K, N), C (M1 + M2, N), all with padded leading dimensions, at gaps from each other.
            const lda1 = M1 + 1, lda2 = M2 + 3, ldb = N + 2, ldc = N + 1, M = M1 + M2;
            const a1 = 5, a2 = a1 + K * lda1 + 3, b = a2 + K * lda2 + 7, c = b + K * ldb + 2, end = c + M * ldc + 6;
            f.fill(0, 0, end);
            f.set(uniformArray(rng, end - 8, -1, 1), 4);
            const before = f.slice(0, end);
            gemm("TN", M1, N, K, w * a1, lda1, w * b, ldb, w * c, ldc, accumulate);
            gemm("TN", M2, N, K, w * a2, lda2, w * b, ldb, w * (c + M1 * ldc), ldc, accumulate);
            const want = f.slice(0, end);
            f.set(before);
            gemm("TN", M1, N, K, w * a1, lda1, w * b, ldb, w * c, ldc, accumulate, 0, M2, w * a2, lda2);
            const got = f.slice(0, end);
            for (let q = 0; q < end; q++) {
              if (!Object.is(got[q], want[q])) expect.fail(`${dtype} M1=${M1} M2=${M2} N=${N} K=${K} acc=${accumulate}: element ${q}: ${got[q]} vs ${want[q]}`);
            }
            expect(got.some((v, q) => v !== before[q]), "C changed").toBe(true);
            cases++;
          }
        }
      }
    }
    expect(cases).toBe(2 * 2 * 8);
  });
});

describe("backend: \"wasm\"", () => {
  it("puts the model's buffers in its WebAssembly memory, trains as the TypeScript kernels do (1e-12), and says so", async () => {
    const { Sequential, LSTM, Dense, Adam, randomNormal } = await import("../src/index.js");
    const make = (backend: "js" | "wasm") => {
      const m = new Sequential([new LSTM({ units: 8, inputDim: 3, returnSequences: true }), new LSTM({ units: 6 }), new Dense({ units: 2, activation: "sigmoid" })], { seed: 4, backend });
      m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: "binaryCrossentropy" });
      return m;
    };
    const js = make("js"), wasm = make("wasm");
    expect([js.backend, wasm.backend]).toEqual(["js", "wasm"]);
    expect(wasm.engine.params.buffer).toBeInstanceOf(SharedArrayBuffer); // the arena's memory
    expect(js.engine.params.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    const x = randomNormal([9, 7, 3], { seed: 5 }), y = Array.from({ length: 9 }, (_, i) => [i % 2, (i >> 1) % 2]);
    for (let s = 0; s < 5; s++) {
      const a = js.trainOnBatch(x, y).loss, b = wasm.trainOnBatch(x, y).loss;
      expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-12 * a);
    }
    const wj = js.engine.params, ww = wasm.engine.params;
    wj.forEach((v, i) => expect(Math.abs(ww[i]! - v)).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(v))));
    expect(wasm.engine.ws(0).states[0]!.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(() => new Sequential([new LSTM({ units: 2, inputDim: 1 }), new Dense({ units: 1 })], { backend: "gpu" as never })).toThrow(/Sequential backend: expected "js" or "wasm", got "gpu"/);
  });

  it("two models in one thread, trained in turn: every buffer of both is in its own arena, where the SIMD kernels find it", async () => {
    const { Sequential, LSTM, Dense, randomNormal } = await import("../src/index.js");
    const { simdFor } = await import("../src/wasm/arena.js");
    const make = () => {
      const m = new Sequential([new LSTM({ units: 8, inputDim: 3 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 4, backend: "wasm", dtype: "float32" });
      m.compile({ optimizer: "adam", loss: "binaryCrossentropy" });
      return m;
    };
    const one = make(), two = make();
    const x = randomNormal([8, 5, 3], { seed: 1, dtype: "float32" }), y = Array.from({ length: 8 }, (_, i) => [i % 2]);
    const xHalf = randomNormal([4, 5, 3], { seed: 2, dtype: "float32" }), yHalf = y.slice(0, 4);
    // As the thread pool does: a model's first step, then the other's on other sizes, then both in turn.
    one.trainOnBatch(x, y);
    two.trainOnBatch(xHalf, yHalf);
    one.trainOnBatch(x, y);
    two.trainOnBatch(x, y);
    for (const m of [one, two]) {
      const e = m.engine as unknown as { params: Float32Array; grads: Float32Array; xs: Float32Array; ws(i: number): Record<string, Float32Array> };
      const ws = e.ws(0);
      for (const [name, a] of [["params", e.params], ["grads", e.grads], ["xs", e.xs], ["hs", ws.hs!], ["cs", ws.cs!], ["gates", ws.gates!], ["dZ", ws.dZ!]] as const) {
        expect(simdFor(a, a, a), `${m === one ? "first" : "second"} model's ${name}`).not.toBeNull();
      }
    }
  });

  for (const threads of [2, 3]) it(`with ${threads} threads: every slice runs in SIMD (the workers' replicas in their own WebAssembly memory), and each step equals one thread's`, async () => {
    const { Sequential, LSTM, Dense, Adam, randomNormal, setThreads } = await import("../src/node/index.js");
    const make = () => {
      const m = new Sequential([new LSTM({ units: 64, inputDim: 16 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 9, backend: "wasm" });
      m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: "binaryCrossentropy" });
      return m;
    };
    const one = make(), two = make();
    setThreads(two, threads, { minFlops: 0 });
    try {
      const x = randomNormal([16, 30, 16], { seed: 2 }), y = Array.from({ length: 16 }, (_, i) => [i % 2]);
      for (let s = 0; s < 3; s++) {
        const a = one.trainOnBatch(x, y).loss, b = two.trainOnBatch(x, y).loss;
        expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-12 * a);
      }
      one.engine.params.forEach((v, i) => expect(Math.abs(two.engine.params[i]! - v)).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(v))));
      expect(two.threads).toBe(threads);
      expect(two.backend).toBe("wasm");
      expect((two.engine.executor as unknown as { simdWorkers: number }).simdWorkers).toBe(threads - 1);
      // The calling thread's slice computes in SIMD too: every buffer it uses is found in the arena. (Measured
      // before the fix: a worker's memory growing made this thread's shared memories hand out new buffer objects,
      // and the slice's input and hidden-state buffers, made on one of those, ran in TypeScript.)
      const { simdFor } = await import("../src/wasm/arena.js");
      const e = two.engine as unknown as { params: Float64Array; grads: Float64Array; xs: Float64Array; ws(i: number): Record<string, Float64Array> };
      const ws = e.ws(0);
      for (const [name, a] of [["params", e.params], ["grads", e.grads], ["xs", e.xs], ["hs", ws.hs!], ["cs", ws.cs!], ["gates", ws.gates!], ["dZ", ws.dZ!]] as const) {
        expect(simdFor(a, a, a), name).not.toBeNull();
      }
      // The workers read the model's own weights (no copy per call) and write their gradients into its arena,
      // where the merge runs in SIMD.
      const pool = two.engine.executor as unknown as { paramsView: Float64Array; workerGrads: Float64Array[] };
      expect(pool.paramsView).toBe(e.params);
      expect(pool.workerGrads.length).toBe(threads - 1);
      for (const g of pool.workerGrads) expect(mixFor(e.grads, g)).not.toBeNull();
    } finally {
      two.dispose();
    }
  });
});

describe("WebAssembly SIMD gate math (src/wasm/gates.ts)", () => {
  /** Pre-activations over the whole range: ordinary, large, the clamp and table edges, and the special values. */
  function preActivations(rng: ReturnType<typeof makeRng>, n: number): number[] {
    const edges = [0, -0, 1e-300, -1e-300, 5e-324, 22, -22, 22.0000001, -21.9999999, 5.545, -5.545, 5.5452, -5.5452, 11.09, -11.09,
      -708, -707.9999, 709.7, 745.2, 745.3, 800, -745.2, 1e300, -1e300, Infinity, NaN, 0.1868251, -0.1868251, 3e-9, -3e-9];
    const out: number[] = [];
    for (let q = 0; q < n; q++) {
      const u = rng.uniform(), kind = q % 5;
      if (kind === 0) out.push(edges[q / 5 % edges.length | 0]!);
      else if (kind === 1) out.push((u * 2 - 1) * 4);
      else if (kind === 2) out.push((u * 2 - 1) * 30);
      else if (kind === 3) out.push((u * 2 - 1) * 700);
      else out.push((u * 2 - 1) * 1e-6);
    }
    return out;
  }

  {
    const dtype = "float64", Arr = Float64Array;
    it(`${dtype}: every activation, c, tanh(c) and h bit for bit as lstmGatesForward in TypeScript, over the full range of inputs`, () => {
      const arena = WasmArena.create()!;
      expect(arena).not.toBeNull();
      const rng = makeRng(`wasm/gates/${dtype}`);
      let ran = 0;
      // H/2 vectors a block: 1, 3, 16·2, 15 (4 passes and 3 left), 2, 5 (4 and 1 left): each count left over by the passes.
      for (const [B, H] of [[1, 2], [3, 6], [8, 64], [5, 30], [2, 4], [4, 10]] as const) {
        for (let round = 0; round < 4; round++) {
          const z0 = preActivations(rng, B * 4 * H), cp0 = preActivations(rng, B * H);
          // Inputs below -708 on σ gates make the kernel decline; keep them to the tanh block (g) and cPrev here.
          for (let b = 0; b < B; b++) for (let j = 0; j < 4 * H; j++) {
            const q = b * 4 * H + j;
            if ((j < 2 * H || j >= 3 * H) && z0[q]! < -708) z0[q] = -z0[q]!;
          }
          const heap = { z: Arr.from(z0), cp: Arr.from(cp0), c: new Arr(B * H), tc: new Arr(B * H), h: new Arr(B * H) };
          const wasm = { z: arena.alloc(dtype, B * 4 * H), cp: arena.alloc(dtype, B * H), c: arena.alloc(dtype, B * H), tc: arena.alloc(dtype, B * H), h: arena.alloc(dtype, B * H) };
          wasm.z.set(heap.z); wasm.cp.set(heap.cp);
          lstmGatesForward(B, H, heap.z, 0, heap.cp, 0, heap.c, 0, heap.tc, 0, heap.h, 0, false);
          // Straight to the kernel, so that the test knows it ran (0) rather than declined to the TypeScript path.
          const gates = arena.gates64;
          const at = (a: Float32Array | Float64Array): number => a.byteOffset;
          expect(gates(B, H, at(wasm.z), at(wasm.cp), at(wasm.c), at(wasm.tc), at(wasm.h))).toBe(0);
          ran++;
          for (const key of ["z", "c", "tc", "h"] as const) {
            const got = wasm[key], want = heap[key];
            for (let q = 0; q < want.length; q++) {
              if (!Object.is(got[q], want[q])) expect.fail(`B=${B} H=${H} ${key}[${q}] = ${got[q]} vs ${want[q]} (z in ${z0[q]}, cPrev ${cp0[q % (B * H)]})`);
            }
          }
        }
      }
      expect(ran).toBe(24);
    });
  }

  /** Distance in float32 ulps: the gap between the two values' positions in the ordered float32 line (subnormals included). */
  const u32 = new Uint32Array(1), f32v = new Float32Array(u32.buffer);
  const ord = (v: number): number => { f32v[0] = v; const b = u32[0]!; return b >= 0x80000000 ? -(b - 0x80000000) : b; };
  const ulps32 = (got: number, want: number): number => (Object.is(got, want) ? 0 : Number.isNaN(got) || Number.isNaN(want) ? Infinity : Math.abs(ord(got) - ord(want)));
  /** σ and tanh rounded to float32 from the float64 kernels, themselves within 3 double ulps of the true values. */
  const sig32 = (x: number): number => Math.fround(x < -708 ? Math.exp(x) : fastSigmoid(x));
  const tanh32 = (x: number): number => Math.fround(fastTanh(x));

  // Fused (fma: true): the exp's reduction and polynomial with relaxed SIMD's multiply-adds, which Node 20 has behind a
  // V8 flag, set here for that case and cleared after it (each test file runs in a process of its own).
  for (const fused of [false, true]) it(`float32 (f32x4)${fused ? ", fused" : ""}: σ within 2 and tanh within 3 float32 ulps over the whole float32 range; ±∞, ±0, NaN and the subnormal tail of σ`, () => {
    if (fused) setFlagsFromString("--experimental-wasm-relaxed-simd");
    try { sweep32(fused); } finally { if (fused) setFlagsFromString("--no-experimental-wasm-relaxed-simd"); }
  });
  function sweep32(fused: boolean): void {
    const B = 1, H = 1024;
    /** One step's arrays in an arena, and the arena's float32 gate kernel on them (0: it ran). */
    const step = (a: WasmArena) => {
      const v = { z: a.alloc("float32", B * 4 * H), cp: a.alloc("float32", B * H), c: a.alloc("float32", B * H), tc: a.alloc("float32", B * H), h: a.alloc("float32", B * H) };
      return { ...v, run: () => a.gates32(B, H, v.z.byteOffset, v.cp.byteOffset, v.c.byteOffset, v.tc.byteOffset, v.h.byteOffset) };
    };
    const arena = WasmArena.create(undefined, fused)!;
    expect(arena.fused).toBe(fused);
    const { z, run } = step(arena);
    // The unfused kernel beside it, on the same inputs, to see that fusing changed something.
    const p = fused ? step(WasmArena.create()!) : null;
    let differ = 0;
    // Every 4099th float32 bit pattern (about a million values, both signs, subnormals to ±∞ and the NaNs), then edges.
    const inputs: number[] = [];
    for (let pat = 0; pat < 2 ** 32; pat += 4099) { u32[0] = pat; inputs.push(f32v[0]!); }
    inputs.push(0, -0, Infinity, -Infinity, NaN, 1e-45, -1e-45, 10, -10, 10.000001, 9.999999, -87.3, -88.7, -100, -103.97, -104, -104.1, 3.4e38, -3.4e38);
    let worstS = 0, worstT = 0, atS = NaN, atT = NaN;
    for (let at = 0; at < inputs.length; at += H) {
      const m = Math.min(H, inputs.length - at);
      for (let j = 0; j < H; j++) { const v = j < m ? inputs[at + j]! : 0; z[j] = v; z[H + j] = v; z[2 * H + j] = v; z[3 * H + j] = v; }
      if (p) { p.z.set(z); expect(p.run()).toBe(0); }
      expect(run()).toBe(0);
      if (p) for (let j = 0; j < 4 * H; j++) if (!Object.is(z[j], p.z[j])) differ++;
      for (let j = 0; j < m; j++) {
        const v = Math.fround(inputs[at + j]!), es = ulps32(z[j]!, sig32(v)), et = ulps32(z[2 * H + j]!, tanh32(v));
        if (es > worstS) { worstS = es; atS = v; }
        if (et > worstT) { worstT = et; atT = v; }
      }
    }
    console.log(`float32 gate kernel${fused ? ", fused" : ""}, ulps over ${inputs.length} inputs: σ ${worstS} (at ${atS}), tanh ${worstT} (at ${atT})${fused ? `; ${differ} activations differ from the unfused kernel's` : ""}`);
    if (fused) expect(differ).toBeGreaterThan(1000);
    expect(worstS).toBeLessThanOrEqual(2);
    expect(worstT).toBeLessThanOrEqual(3);
    // The special values exactly, and σ's subnormal tail to the last bit (e^x rounds once there).
    const one = (v: number): { s: number; t: number } => {
      z.fill(0); z[0] = v; z[2 * H] = v;
      run();
      return { s: z[0]!, t: z[2 * H]! };
    };
    expect(one(Infinity)).toEqual({ s: 1, t: 1 });
    expect(one(-Infinity)).toEqual({ s: 0, t: -1 });
    expect(Object.is(one(-0).t, -0)).toBe(true);
    expect(Object.is(one(0).t, 0)).toBe(true);
    expect(one(0).s).toBe(0.5);
    expect(one(NaN).s).toBeNaN();
    expect(one(NaN).t).toBeNaN();
    for (const x of [-87.5, -90, -95, -100, -103, -103.9]) {
      const want = sig32(x);
      expect(want).toBeGreaterThan(0);
      expect(want).toBeLessThan(2 ** -126); // a subnormal float32
      expect(ulps32(one(x).s, want), `σ(${x})`).toBeLessThanOrEqual(1);
    }
    expect(one(-104.5).s).toBe(0);
    expect(one(-1e30).s).toBe(0);
  }

  it("float32 (f32x4): c = f·cPrev + i·g and h = o·tanh(c) as float32 arithmetic gives them, for H ≡ 0 and 2 (mod 4), nothing written past the arrays", () => {
    const arena = WasmArena.create()!;
    const rng = makeRng("wasm/gates/float32-cell");
    let ran = 0;
    // What a block leaves after its passes of four vectors: 0 to 3 whole vectors, with and without a half one (H ≡ 2 mod 4).
    for (const [B, H] of [[1, 2], [3, 6], [8, 64], [5, 30], [2, 4], [4, 10], [2, 8], [3, 12]] as const) {
      const pad = 8, SENT = 7.25;
      const z0 = preActivations(rng, B * 4 * H), cp0 = preActivations(rng, B * H);
      const zA = arena.alloc("float32", B * 4 * H + pad), cpA = arena.alloc("float32", B * H + pad);
      const cA = arena.alloc("float32", B * H + pad), tcA = arena.alloc("float32", B * H + pad), hA = arena.alloc("float32", B * H + pad);
      for (const a of [zA, cpA, cA, tcA, hA]) a.fill(SENT);
      zA.set(z0); cpA.set(cp0);
      expect(arena.gates32(B, H, zA.byteOffset, cpA.byteOffset, cA.byteOffset, tcA.byteOffset, hA.byteOffset)).toBe(0);
      ran++;
      for (let b = 0; b < B; b++) {
        for (let j = 0; j < 4 * H; j++) {
          const q = b * 4 * H + j, v = Math.fround(z0[q]!), tanhBlock = j >= 2 * H && j < 3 * H;
          const e = ulps32(zA[q]!, tanhBlock ? tanh32(v) : sig32(v));
          if (!(e <= (tanhBlock ? 3 : 2))) expect.fail(`B=${B} H=${H} z[${q}] = ${zA[q]} from ${v}: ${e} ulps`);
        }
        for (let j = 0; j < H; j++) {
          const g = b * 4 * H + j, s = b * H + j, fr = Math.fround;
          const cv = fr(fr(zA[g + H]! * cpA[s]!) + fr(zA[g]! * zA[g + 2 * H]!)); // the kernel's own activations
          if (!Object.is(cA[s], cv)) expect.fail(`B=${B} H=${H} c[${s}] = ${cA[s]} vs ${cv}`);
          if (!(ulps32(tcA[s]!, tanh32(cv)) <= 3)) expect.fail(`B=${B} H=${H} tanh(c)[${s}] = ${tcA[s]} vs ${tanh32(cv)}`);
          if (!Object.is(hA[s], fr(zA[g + 3 * H]! * tcA[s]!))) expect.fail(`B=${B} H=${H} h[${s}] = ${hA[s]}`);
        }
      }
      for (const [name, a, n] of [["z", zA, B * 4 * H], ["cPrev", cpA, B * H], ["c", cA, B * H], ["tanhC", tcA, B * H], ["h", hA, B * H]] as const) {
        for (let q = n; q < n + pad; q++) if (a[q] !== SENT) expect.fail(`B=${B} H=${H}: ${name}[${q}] written past the end`);
      }
    }
    expect(ran).toBe(8);
  });

  for (const dtype of ["float64", "float32"] as const) {
    it(`${dtype}: the backward (dz and dL/dc_{t-1}) bit for bit as ${dtype === "float64" ? "lstmGatesBackward in TypeScript" : "its operations rounded to float32 one by one"}, nothing written past the arrays`, () => {
      const arena = WasmArena.create()!;
      const rng = makeRng(`wasm/gates-back/${dtype}`);
      const Arr = dtype === "float32" ? Float32Array : Float64Array;
      let ran = 0;
      for (const [B, H] of [[1, 2], [3, 6], [8, 64], [5, 30], [2, 4], [4, 10]] as const) {
        // Activations as forward leaves them (σ in (0, 1), tanh in (-1, 1)), some at the ends; any dh, dc, cPrev.
        const acts = Array.from({ length: B * 4 * H }, (_, q) => {
          const u = rng.uniform(), j = q % (4 * H);
          if (q % 11 === 0) return j >= 2 * H && j < 3 * H ? -1 : 1;
          return j >= 2 * H && j < 3 * H ? 2 * u - 1 : u;
        });
        const tanhC = uniformArray(rng, B * H, -1, 1), cPrev = uniformArray(rng, B * H, -30, 30);
        const dh = uniformArray(rng, B * H, -5, 5), dc = uniformArray(rng, B * H, -5, 5);
        dh[0] = 1e-300; dc[1] = -0; cPrev[2 % (B * H)] = 1e300;
        const heap = { g: Arr.from(acts), cp: Arr.from(cPrev), tc: Arr.from(tanhC), dh: Arr.from(dh), dc: Arr.from(dc), dz: new Arr(B * 4 * H) };
        const pad = 8, SENT = 7.25; // past each array: must stay
        const put = (a: Float32Array | Float64Array) => { const v = arena.alloc(dtype, a.length + pad); v.fill(SENT); v.set(a); return v; };
        const wasm = { g: put(heap.g), cp: put(heap.cp), tc: put(heap.tc), dh: put(heap.dh), dc: put(heap.dc), dz: put(new Arr(B * 4 * H)) };
        if (dtype === "float64") lstmGatesBackward(B, H, heap.g, 0, heap.cp, 0, heap.tc, 0, heap.dh, 0, heap.dc, 0, heap.dz, 0);
        else {
          // The kernel's operations in its order, each rounded to float32.
          const fr = Math.fround, { g, cp, tc, dz } = heap, dcs = heap.dc, dhs = heap.dh;
          for (let b = 0; b < B; b++) for (let j = 0; j < H; j++) {
            const q = b * 4 * H + j, st = b * H + j, i = g[q]!, f = g[q + H]!, gg = g[q + 2 * H]!, o = g[q + 3 * H]!, t = tc[st]!, d = dhs[st]!;
            const dcv = fr(dcs[st]! + fr(fr(d * o) * fr(1 - fr(t * t))));
            dz[q] = fr(fr(fr(dcv * gg) * i) * fr(1 - i));
            dz[q + H] = fr(fr(fr(dcv * cp[st]!) * f) * fr(1 - f));
            dz[q + 2 * H] = fr(fr(dcv * i) * fr(1 - fr(gg * gg)));
            dz[q + 3 * H] = fr(fr(fr(d * t) * o) * fr(1 - o));
            dcs[st] = fr(dcv * f);
          }
        }
        const back = dtype === "float32" ? arena.gatesBack32 : arena.gatesBack64;
        back(B, H, wasm.g.byteOffset, wasm.cp.byteOffset, wasm.tc.byteOffset, wasm.dh.byteOffset, wasm.dc.byteOffset, wasm.dz.byteOffset);
        ran++;
        for (const key of ["dz", "dc"] as const) {
          for (let q = 0; q < heap[key].length; q++) {
            if (!Object.is(wasm[key][q], heap[key][q])) expect.fail(`B=${B} H=${H} ${key}[${q}] = ${wasm[key][q]} vs ${heap[key][q]}`);
          }
        }
        for (const key of ["g", "cp", "tc", "dh", "dc", "dz"] as const) {
          const n = heap[key].length;
          for (let q = n; q < n + pad; q++) if (wasm[key][q] !== SENT) expect.fail(`B=${B} H=${H}: ${key}[${q}] written past the end`);
        }
      }
      expect(ran).toBe(6);
    });
  }

  it("bias rows: Y += bias and dBias += column sums (four rows per pass, then one by one), bit for bit as addBiasRows and sumRowsInto (float32 sums: as their additions rounded one by one)", () => {
    const arena = WasmArena.create()!;
    let ran = 0;
    for (const dtype of ["float64", "float32"] as const) {
      const Arr = dtype === "float32" ? Float32Array : Float64Array, w = dtype === "float32" ? 4 : 8;
      const rng = makeRng(`wasm/bias/${dtype}`);
      for (const [M, N, ld] of [[1, 2, 2], [3, 6, 9], [4, 8, 8], [5, 10, 13], [9, 512, 512], [66, 4, 7]] as const) {
        const y0 = uniformArray(rng, 3 + M * ld, -10, 10), b0 = uniformArray(rng, 2 + N + 4, -10, 10); // 4 past the bias: must stay
        y0[3] = 1e300; y0[4 % y0.length] = -1e300; b0[2] = -0;
        for (const sum of [false, true]) {
          const heap = { y: Arr.from(y0), b: Arr.from(b0) };
          const wy = arena.alloc(dtype, y0.length), wb = arena.alloc(dtype, b0.length);
          wy.set(heap.y); wb.set(heap.b);
          if (sum && dtype === "float32") {
            // The kernel's additions in its order, each rounded to float32: four rows a pass, then one by one.
            const fr = Math.fround, y = heap.y, b = heap.b, at = (r: number, j: number): number => y[3 + r * ld + j]!;
            let r = 0;
            for (; r + 4 <= M; r += 4) for (let j = 0; j < N; j++) b[2 + j] = fr(b[2 + j]! + fr(fr(at(r, j) + at(r + 1, j)) + fr(at(r + 2, j) + at(r + 3, j))));
            for (; r < M; r++) for (let j = 0; j < N; j++) b[2 + j] = fr(b[2 + j]! + at(r, j));
          } else if (sum) sumRowsInto(M, N, heap.y, 3, ld, heap.b, 2);
          else addBiasRows(M, N, heap.y, 3, ld, heap.b, 2);
          arena.bias[(sum ? 2 : 0) + (dtype === "float32" ? 1 : 0)]!(M, N, wy.byteOffset + 3 * w, ld, wb.byteOffset + 2 * w);
          ran++;
          for (const [got, want, name] of [[wy, heap.y, "Y"], [wb, heap.b, "bias"]] as const) {
            for (let q = 0; q < want.length; q++) {
              if (!Object.is(got[q], want[q])) expect.fail(`${dtype} ${sum ? "sum" : "add"} M=${M} N=${N}: ${name}[${q}] = ${got[q]} vs ${want[q]}`);
            }
          }
        }
      }
    }
    expect(ran).toBe(24);
  });

  it("Adam in SIMD: bit for bit as Adam.apply's loop, float64 and float32 weights, even and odd counts; a model's moments live in its arena", () => {
    const arena = WasmArena.create()!;
    const rng = makeRng("wasm/adam");
    let ran = 0;
    // (13 = a block of eight, two pairs and one: every loop of sumSquares)
    for (const dtype of ["float64", "float32"] as const) for (const n of [1, 2, 7, 13, 64]) {
      const Arr = dtype === "float32" ? Float32Array : Float64Array, fr = dtype === "float32" ? Math.fround : (x: number) => x;
      const w0 = Arr.from(uniformArray(rng, n, -2, 2)), g0 = Arr.from(uniformArray(rng, n, -3, 3));
      const m0 = Float64Array.from(uniformArray(rng, n, -1, 1)), v0 = Float64Array.from(uniformArray(rng, n, 0, 2));
      g0[0] = 1e-30; v0[n - 1] = 0; // a tiny gradient; a zero second moment (ε carries the division)
      const alpha = 0.0123, b1 = 0.9, b2 = 0.999, eps = 1e-7;
      // The reference: Adam.apply's loop as written in src/optimizers.ts.
      const w = w0.slice(), m = m0.slice(), v = v0.slice();
      for (let k = 0; k < n; k++) {
        const g = g0[k]!;
        const mk = m[k]! + (g - m[k]!) * (1 - b1), vk = v[k]! + (g * g - v[k]!) * (1 - b2);
        m[k] = mk; v[k] = vk;
        w[k] = fr(w[k]! - (alpha * mk) / (Math.sqrt(vk) + eps));
      }
      const aw = arena.alloc(dtype, n + 2), ag = arena.alloc(dtype, n), am = arena.alloc("float64", n + 2) as Float64Array, av = arena.alloc("float64", n + 2) as Float64Array;
      aw.set(w0); ag.set(g0); am.set(m0); av.set(v0);
      aw[n] = 7.25; am[n] = 7.25; av[n] = 7.25; // past the end: must stay
      (dtype === "float32" ? arena.adam32 : arena.adam64)(n, aw.byteOffset, ag.byteOffset, am.byteOffset, av.byteOffset, alpha, 1 - b1, 1 - b2, eps);
      ran++;
      for (let k = 0; k < n; k++) {
        if (!Object.is(aw[k], w[k]) || !Object.is(am[k], m[k]) || !Object.is(av[k], v[k])) expect.fail(`${dtype} n=${n} [${k}]: w ${aw[k]} vs ${w[k]}, m ${am[k]} vs ${m[k]}, v ${av[k]} vs ${v[k]}`);
      }
      expect([aw[n], am[n], av[n]]).toEqual([7.25, 7.25, 7.25]);
      // Σ x²: the JS sum to rounding, and not finite when an entry is not
      const sq = (dtype === "float32" ? arena.sumSquares32 : arena.sumSquares64)(n, ag.byteOffset);
      let want = 0;
      for (let k = 0; k < n; k++) want += ag[k]! * ag[k]!;
      expect(Math.abs(sq - want)).toBeLessThanOrEqual(1e-12 * want);
      ag[n - 1] = NaN;
      expect((dtype === "float32" ? arena.sumSquares32 : arena.sumSquares64)(n, ag.byteOffset)).toBeNaN();
      ag[n - 1] = -Infinity;
      expect((dtype === "float32" ? arena.sumSquares32 : arena.sumSquares64)(n, ag.byteOffset)).toBe(Infinity);
      ag[n - 1] = 1;
      for (const at of [3, 6, 9]) if (at < n) { // in each of a block's lanes, or a pair
        const keep = ag[at]!;
        ag[at] = NaN;
        expect((dtype === "float32" ? arena.sumSquares32 : arena.sumSquares64)(n, ag.byteOffset), `NaN at ${at} of ${n}`).toBeNaN();
        ag[at] = keep;
      }
    }
    expect(ran).toBe(10);
    // A model on the SIMD backend keeps Adam's moments in its arena, where this kernel runs on them.
    for (const dtype of ["float64", "float32"] as const) {
      const model = new Sequential([new LSTM({ units: 4, inputDim: 3 }), new Dense({ units: 1 })], { seed: 1, dtype, backend: "wasm" });
      const adam = new Adam();
      model.compile({ optimizer: adam, loss: "mse" });
      expect(adamFor(model.engine.params, model.engine.grads, adam.m, adam.v)).not.toBeNull();
    }
  });

  it("clear: zeros every value of an arena's array in SIMD (whole vectors, then one value at a time), nothing before or after it; a heap array by fill", () => {
    const arena = WasmArena.create()!;
    let ran = 0;
    for (const dtype of ["float64", "float32"] as const) for (const n of [1, 3, 4, 5, 8, 491]) {
      const guard = arena.alloc(dtype, n + 8);
      guard.fill(7);
      const x = guard.subarray(4, 4 + n); // a view of the arena 4 values in: the kernel gets its offset
      expect(zeroFor(x)).not.toBeNull();
      clear(x);
      for (let q = 0; q < n + 8; q++) expect(guard[q], `${dtype} n=${n} [${q}]`).toBe(q >= 4 && q < 4 + n ? 0 : 7);
      ran++;
    }
    expect(ran).toBe(12);
    const heap = new Float64Array(5).fill(3);
    expect(zeroFor(heap)).toBeNull();
    clear(heap);
    expect(Array.from(heap)).toEqual([0, 0, 0, 0, 0]);
  });

  it("the threads' gradient merge in SIMD: g ← a·g + b·h bit for bit as the pool's TypeScript loop, float64 and float32, even and odd counts", () => {
    const arena = WasmArena.create()!;
    const rng = makeRng("wasm/mix");
    let ran = 0;
    for (const dtype of ["float64", "float32"] as const) for (const n of [1, 2, 7, 64]) {
      const Arr = dtype === "float32" ? Float32Array : Float64Array;
      const g0 = Arr.from(uniformArray(rng, n, -3, 3)), h0 = Arr.from(uniformArray(rng, n, -3, 3));
      g0[0] = 3e-39; h0[n - 1] = -1e-30; // float32: a subnormal, which a·g in float32 would round (the loop widens first)
      const a = 4 / 7, b = 3 / 7; // weights that float32 cannot hold: the loop multiplies in float64
      // The reference: mergeGrads' loop in src/threads/pool.ts.
      const want = g0.slice();
      for (let k = 0; k < n; k++) want[k] = a * g0[k]! + b * h0[k]!;
      const ag = arena.alloc(dtype, n + 1), ah = arena.alloc(dtype, n);
      ag.set(g0); ah.set(h0); ag[n] = 7.25; // past the end: must stay
      expect(mixFor(ag, ah)).toBe(dtype === "float32" ? arena.mix32 : arena.mix64);
      (dtype === "float32" ? arena.mix32 : arena.mix64)(n, ag.byteOffset, ah.byteOffset, a, b);
      ran++;
      for (let k = 0; k < n; k++) if (!Object.is(ag[k], want[k])) expect.fail(`${dtype} n=${n} [${k}]: ${ag[k]} vs ${want[k]}`);
      expect(ag[n]).toBe(7.25);
      expect(Array.from(ah)).toEqual(Array.from(h0));
    }
    expect(ran).toBe(8);
    // Arrays outside the arena, or of two dtypes, have no kernel (the pool then merges in TypeScript).
    expect(mixFor(new Float64Array(4), arena.alloc("float64", 4))).toBeNull();
    expect(mixFor(arena.alloc("float32", 4), arena.alloc("float64", 4))).toBeNull();
  });

  it("plans: looked up once for a loop, they find the arena's kernels (null for heap arrays or a mixed set) and write exactly what the calls without them write", () => {
    const arena = WasmArena.create()!;
    const rng = makeRng("wasm/plans");
    for (const dtype of ["float64", "float32"] as const) {
      const B = 3, H = 6, G = 4 * H, T = 4;
      const put = (n: number, lo = -1, hi = 1) => { const a = arena.alloc(dtype, n); a.set(uniformArray(rng, n, lo, hi)); return a; };
      const hs = put((T + 1) * B * H), U = put(H * G), z0 = put(T * B * G, -3, 3), cs0 = put((T + 1) * B * H), tc = arena.alloc(dtype, T * B * H);
      const heap = dtype === "float32" ? new Float32Array(B * G) : new Float64Array(B * G);
      expect(gemmPlan(B, G, hs, U, heap)).toBeNull();
      expect(gatesPlan(H, false, z0, cs0, cs0, tc, hs)).not.toBeNull();
      expect(gatesPlan(H, true, z0, cs0, cs0, tc, hs)).toBeNull(); // hard sigmoid runs in TypeScript
      // The forward loop of lstm.ts, with plans and without, on copies of the same arrays.
      const run = (withPlans: boolean) => {
        const z = arena.alloc(dtype, z0.length), cs = arena.alloc(dtype, cs0.length), h = arena.alloc(dtype, hs.length), t = arena.alloc(dtype, tc.length);
        z.set(z0); cs.set(cs0); h.set(hs);
        const mm = withPlans ? gemmPlan(B, G, h, U, z) : null, gp = withPlans ? gatesPlan(H, false, z, cs, cs, t, h) : null;
        if (withPlans) { expect(mm).not.toBeNull(); expect(gp).not.toBeNull(); }
        for (let s = 0; s < T; s++) {
          matmulNN(B, G, H, h, s * B * H, H, U, 0, G, z, s * B * G, G, true, s === 0 ? HOLD_NEW : HOLD_SAME, mm);
          lstmGatesForward(B, H, z, s * B * G, cs, s * B * H, cs, (s + 1) * B * H, t, s * B * H, h, (s + 1) * B * H, false, gp);
        }
        return [z, cs, h, t];
      };
      const a = run(true), b = run(false);
      // and one call on five distinct arrays (the loop passes one array as both cPrev and c), forward and backward
      const one = (withPlans: boolean) => {
        const r = makeRng(`wasm/plans/one/${dtype}`); // the same inputs for both calls
        const put1 = (n: number, lo = -1, hi = 1) => { const x = arena.alloc(dtype, n); x.set(uniformArray(r, n, lo, hi)); return x; };
        const z = put1(B * G, -3, 3), cp = put1(B * H), c = put1(B * H), t = put1(B * H), h = put1(B * H), dh = put1(B * H), dc = put1(B * H), dz = put1(B * G);
        lstmGatesForward(B, H, z, 0, cp, 0, c, 0, t, 0, h, 0, false, withPlans ? gatesPlan(H, false, z, cp, c, t, h) : null);
        lstmGatesBackward(B, H, z, 0, cp, 0, t, 0, dh, 0, dc, 0, dz, 0, withPlans ? gatesBackPlan(H, z, cp, t, dh, dc, dz) : null);
        return [z, cp, c, t, h, dh, dc, dz];
      };
      a.push(...one(true));
      b.push(...one(false));
      for (let k = 0; k < a.length; k++) for (let q = 0; q < a[k]!.length; q++) {
        if (!Object.is(a[k]![q], b[k]![q])) expect.fail(`${dtype}: array ${k}[${q}] ${a[k]![q]} with plans vs ${b[k]![q]}`);
      }
    }
  });

  it("the recurrence in one call (a batch below four rows): the same bits as lstm.ts's kernel calls, forward (input projection inside when small, bias or none, then the loop) and backward (the loop, with and without gradients from a layer above, then the weight gradients inside when small), both dtypes, fused or not, H with and without a partial strip; a declined float64 step runs in TypeScript", () => {
    // What lstmForward and lstmBackward call (and still call for four rows and more): the products, bias rows and
    // per-step kernels, each dispatching itself; against lstmRecurrence(Backward) on copies of the arrays.
    const check = (fused: boolean) => {
      const arena = WasmArena.create(undefined, fused)!;
      expect(arena.fused).toBe(fused);
      // byte 0 means "none" to the steps kernels (no bias, no gradients from above): no array may start there
      expect(WasmArena.create(undefined, fused)!.alloc("float64", 1).byteOffset).toBeGreaterThan(0);
      let runs = 0;
      const ways = new Set<string>();
      for (const dtype of ["float64", "float32"] as const) for (const B of [1, 2, 3]) for (const H of [2, 6, 10, 12, 14, 16]) {
        // steps [1, T) of a workspace of T: offsets other than 0; at H = 16, larger products outside the call: the
        // weight gradients at B = 2 (38 rows), both them and the projection at B = 3 (297 rows)
        const G = 4 * H, T = H !== 16 || B === 1 ? 5 : B === 2 ? 20 : 100, t0 = 1, t1 = T, n = t1 - t0, I = H % 4 === 2 ? 1 : 3;
        const rng = makeRng(`wasm/steps/${dtype}/${B}/${H}/${fused}`);
        const put = (k: number, lo = -1, hi = 1) => { const a = arena.alloc(dtype, k); a.set(uniformArray(rng, k, lo, hi)); return a; };
        const hs0 = put((T + 1) * B * H), cs0 = put((T + 1) * B * H), x = put(T * B * I), W = put(I * G), U = put(H * G);
        const bias = B === 2 ? null : put(G), dh0 = put(B * H), dc0 = put(B * H), dW0 = put((I + H) * G), dB0 = put(G);
        // dL/dh_t from a layer above (a sequence-returning layer): none (B = 1), for steps t ≥ 2 (B = 2), for every
        // step from before the range (B = 3); rows 3 values into the array
        const from = B === 2 ? 2 : 0, dhSeq = B === 1 ? null : put(3 + (T - from) * B * H);
        // A float64 σ input of −725 at step 3, row B − 1 (x·W there; column H + 1 of W's other rows, of R and of
        // the bias zero): the SIMD gate kernel declines that step.
        if (dtype === "float64") {
          x[(3 * B + B - 1) * I] = 100;
          for (let i = 0; i < I; i++) W[i * G + H + 1] = i === 0 ? -7.25 : 0;
          for (let j = 0; j < H; j++) U[j * G + H + 1] = 0;
          if (bias) bias[H + 1] = 0;
        }
        const copy = (a: Float32Array | Float64Array) => { const c = arena.alloc(dtype, a.length); c.set(a); return c; };
        const run = (once: boolean) => {
          const hs = copy(hs0), cs = copy(cs0), z = arena.alloc(dtype, T * B * G), tc = arena.alloc(dtype, T * B * H);
          // As lstmForward: the projection inside the call when small, else the product and bias rows first.
          const small = n * B * G * I <= SMALL_PRODUCT;
          if (!once || !small) {
            matmulNN(n * B, G, I, x, t0 * B * I, I, W, 0, G, z, t0 * B * G, G, false);
            if (bias) addBiasRows(n * B, G, z, t0 * B * G, G, bias, 0);
          }
          if (once) expect(lstmRecurrence(B, H, I, x, t0 * B * I, W, bias, hs, cs, z, tc, U, t0, t1, small)).toBe(true);
          else {
            for (let t = t0; t < t1; t++) {
              matmulNN(B, G, H, hs, t * B * H, H, U, 0, G, z, t * B * G, G, true, t === t0 ? HOLD_NEW : HOLD_SAME);
              lstmGatesForward(B, H, z, t * B * G, cs, t * B * H, cs, (t + 1) * B * H, tc, t * B * H, hs, (t + 1) * B * H, false);
            }
          }
          const dh = copy(dh0), dc = copy(dc0), dz = arena.alloc(dtype, T * B * G), dW = copy(dW0), dB = bias ? copy(dB0) : null;
          // (below 8 units, dh = dz·Rᵀ runs in TypeScript's kernels, as before: lstm.ts's calls run)
          // As lstmBackward: the loop in the call (1) and the weight gradients too when small (2); else the loop.
          const done = once ? lstmRecurrenceBackward(B, H, I, cs, z, tc, dh, dc, dz, U, t0, t1, dhSeq, 3, from, x, t0 * B * I, hs, dW, dB) : 0;
          if (once) expect(done).toBe(H < 8 ? 0 : (I + H) * G * n * B <= SMALL_PRODUCT ? 2 : 1);
          if (done === 0) {
            for (let t = t1 - 1; t >= t0; t--) {
              if (dhSeq && t >= from) for (let k = 0; k < B * H; k++) dh[k] = dh[k]! + dhSeq[3 + (t - from) * B * H + k]!;
              lstmGatesBackward(B, H, z, t * B * G, cs, t * B * H, tc, t * B * H, dh, 0, dc, 0, dz, t * B * G);
              matmulNT(B, H, G, dz, t * B * G, G, U, 0, G, dh, 0, H, false, t === t1 - 1 ? HOLD_NEW : HOLD_SAME);
            }
          }
          if (done !== 2) {
            matmulTN2(I, H, G, n * B, x, t0 * B * I, I, hs, t0 * B * H, H, dz, t0 * B * G, G, dW, 0, G, true);
            if (dB) sumRowsInto(n * B, G, dz, t0 * B * G, G, dB, 0);
          }
          if (once) { ways.add(`${small}/${done}`); }
          return { hs, cs, z, tc, dh, dc, dz, dW, dB: dB ?? dB0 };
        };
        const a = run(true), b = run(false);
        for (const k of Object.keys(a) as (keyof typeof a)[]) for (let q = 0; q < a[k].length; q++) {
          if (!Object.is(a[k][q], b[k][q])) expect.fail(`${dtype} B=${B} H=${H} fused=${fused}: ${k}[${q}] ${a[k][q]} in one call vs ${b[k][q]}`);
        }
        if (dtype === "float64") expect(a.z[(3 * B + B - 1) * G + H + 1]).toBeGreaterThan(0); // e^-725, through math.exp
        runs++;
      }
      expect(runs).toBe(36);
      // every way through: the projection inside the call or not; the backward not taken (H < 8), the loop alone,
      // the loop and the weight gradients
      expect([...ways].sort()).toEqual(["false/1", "true/0", "true/1", "true/2"]);
      // Four rows and more, an odd H, or arrays outside the arena: not this path (the caller's calls run).
      const x = (k: number) => arena.alloc("float32", k), heap = (k: number) => new Float32Array(k);
      expect(lstmRecurrence(4, 2, 1, x(8), 0, x(8), null, x(20), x(20), x(32), x(8), x(16), 0, 1, true)).toBe(false);
      expect(lstmRecurrence(1, 3, 1, x(8), 0, x(12), null, x(20), x(20), x(24), x(8), x(36), 0, 1, true)).toBe(false);
      expect(lstmRecurrence(1, 2, 1, x(8), 0, x(8), null, heap(20), x(20), x(16), x(8), x(16), 0, 1, true)).toBe(false);
      expect(lstmRecurrence(1, 2, 1, heap(8), 0, x(8), null, x(20), x(20), x(16), x(8), x(16), 0, 1, true)).toBe(false);
      expect(lstmRecurrence(1, 2, 1, x(8), 0, x(8), heap(8), x(20), x(20), x(16), x(8), x(16), 0, 1, true)).toBe(false);
      type F = Float32Array | Float64Array;
      const back = (B: number, H: number, R: F, dhSeq: F | null, xs: F, dW: F) =>
        lstmRecurrenceBackward(B, H, 1, x(80), x(128), x(32), x(32), x(32), x(128), R, 0, 1, dhSeq, 0, 0, xs, 0, x(80), dW, null);
      expect(back(4, 8, x(256), null, x(8), x(288))).toBe(0);
      expect(back(1, 6, x(144), null, x(8), x(168))).toBe(0);
      expect(back(1, 8, heap(256), null, x(8), x(288))).toBe(0);
      expect(back(1, 8, x(256), heap(8), x(8), x(288))).toBe(0);
      expect(back(1, 8, x(256), null, heap(8), x(288))).toBe(0);
      expect(back(1, 8, x(256), null, x(8), heap(288))).toBe(0);
    };
    check(false);
    if (!relaxedSimd()) setFlagsFromString("--experimental-wasm-relaxed-simd");
    try { if (relaxedSimd()) check(true); } finally { setFlagsFromString("--no-experimental-wasm-relaxed-simd"); }
  });

  it("declines, writing nothing, a step with a σ input below -708; lstmGatesForward then gives the TypeScript result", () => {
    const arena = WasmArena.create()!;
    const B = 2, H = 4, z0 = Array.from({ length: B * 4 * H }, (_, q) => (q % 7) - 3);
    z0[4 * H + H + 1] = -720; // row 1, forget gate of unit 1: σ ≈ e^-720, subnormal
    const wasm = { z: arena.alloc("float64", B * 4 * H), cp: arena.alloc("float64", B * H), c: arena.alloc("float64", B * H), tc: arena.alloc("float64", B * H), h: arena.alloc("float64", B * H) };
    wasm.z.set(z0); wasm.cp.fill(0.5);
    const before = wasm.z.slice();
    expect(arena.gates64(B, H, wasm.z.byteOffset, wasm.cp.byteOffset, wasm.c.byteOffset, wasm.tc.byteOffset, wasm.h.byteOffset)).toBe(1);
    expect(Array.from(wasm.z)).toEqual(Array.from(before));
    expect(Array.from(wasm.c)).toEqual(new Array(B * H).fill(0));
    const heap = { z: Float64Array.from(z0), cp: new Float64Array(B * H).fill(0.5), c: new Float64Array(B * H), tc: new Float64Array(B * H), h: new Float64Array(B * H) };
    lstmGatesForward(B, H, heap.z, 0, heap.cp, 0, heap.c, 0, heap.tc, 0, heap.h, 0, false);
    lstmGatesForward(B, H, wasm.z, 0, wasm.cp, 0, wasm.c, 0, wasm.tc, 0, wasm.h, 0, false);
    expect(Array.from(wasm.z)).toEqual(Array.from(heap.z));
    expect(Array.from(wasm.h)).toEqual(Array.from(heap.h));
    expect(wasm.z[4 * H + H + 1]).toBeGreaterThan(0); // e^-720, through math.exp
  });
});

describe("copyRange / clearRange: the states' copies in and out of a stateful model's slots", () => {
  for (const dtype of ["float32", "float64"] as const) {
    it(`${dtype}: in SIMD between views of one arena (every length 0…37, odd offsets), the neighbours untouched; plain arrays by the loop`, () => {
      const arena = WasmArena.create()!;
      const Arr = dtype === "float32" ? Float32Array : Float64Array;
      const rng = makeRng(`wasm/copy/${dtype}`);
      const src = arena.alloc(dtype, 64), dst = arena.alloc(dtype, 64);
      expect(copyFor(dst, src)).not.toBeNull();                       // the kernel, not the loop, is what runs here
      expect(copyFor(new Arr(4), src)).toBeNull();
      for (let n = 0; n <= 37; n++) {
        for (const [dOff, sOff] of [[0, 0], [3, 1], [1, 26]] as const) {
          for (let k = 0; k < 64; k++) { src[k] = rng.uniform() - 0.5; dst[k] = rng.uniform() + 1; }
          const before = Arr.from(dst), plain = Arr.from(dst);
          if (n < COPY_IN_SIMD) arena.copy(n * Arr.BYTES_PER_ELEMENT, dst.byteOffset + dOff * Arr.BYTES_PER_ELEMENT, src.byteOffset + sOff * Arr.BYTES_PER_ELEMENT);
          else copyRange(dst, dOff, src, sOff, n); // in SIMD from COPY_IN_SIMD values on; below, the kernel straight
          copyRange(plain, dOff, Arr.from(src), sOff, n);
          for (let k = 0; k < 64; k++) {
            const want = k >= dOff && k < dOff + n ? src[sOff + k - dOff]! : before[k]!;
            if (dst[k] !== want || plain[k] !== want) expect.fail(`n=${n} dOff=${dOff} sOff=${sOff}: [${k}] = ${dst[k]} (loop ${plain[k]}), expected ${want}`);
          }
          const copied = Arr.from(dst);
          clearRange(dst, dOff, n);
          for (let k = 0; k < 64; k++) {
            const want = k >= dOff && k < dOff + n ? 0 : copied[k]!;
            if (dst[k] !== want) expect.fail(`clearRange n=${n} dOff=${dOff}: [${k}] = ${dst[k]}, expected ${want}`);
          }
        }
      }
    });
  }
});
