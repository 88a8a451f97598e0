/**
 * Fused multiply-add (`Sequential({ fma: true })`, src/wasm/gemm.ts with `fused`): the products add each product with
 * WebAssembly relaxed SIMD's multiply-add. Node 20 has relaxed SIMD behind a V8 flag, which this file sets at run
 * time (node:v8 setFlagsFromString) and clears again at the end; the first test runs before it is set.
 *
 * The products are checked bit for bit against a naive loop that rounds each step acc + a·b once, exactly
 * (`fma32`, `fma64` below), every form, with and without packing, around the tiles, the edges and the rows kernel
 * included; a model with fma on trains, agrees with fma off to rounding, and its worker threads fuse too.
 */
import { setFlagsFromString } from "node:v8";
import { afterAll, describe, expect, it } from "vitest";
import { type Form, type Gemm, KC_TN, createGemm32, createGemm64, createMemory, relaxedSimd } from "../src/wasm/gemm.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Sequential, LSTM, Dense, Adam, ValueError, TruncatedBPTT, setThreads, tensor, encodeCheckpoint, decodeCheckpoint, checkpointFromJSON,
  saveCheckpointSync, loadCheckpoint, loadCheckpointSync, toTfjs, fromTfjs, toSafetensors, fromSafetensors, saveSafetensors, loadSafetensors,
} from "../src/node/index.js";
import type { ThreadPool } from "../src/threads/pool.js";
import { makeRng, uniformArray } from "./helpers/gradcheck.js";

const live: Sequential[] = [];
afterAll(() => {
  for (const m of live) m.dispose();
  setFlagsFromString("--no-experimental-wasm-relaxed-simd");
});

/** a·b + c exactly, as two doubles s + t (Dekker's product via Veltkamp's split, then Knuth's two-sum). */
function exact(a: number, b: number, c: number): [number, number, number] {
  const split = (x: number): [number, number] => {
    const y = 134217729 * x, hi = y - (y - x);
    return [hi, x - hi];
  };
  const p = a * b, [ah, al] = split(a), [bh, bl] = split(b);
  const e = ((ah * bh - p) + ah * bl + al * bh) + al * bl; // a·b = p + e exactly
  const s = p + c, bb = s - p, t = (p - (s - bb)) + (c - bb); // p + c = s + t exactly
  return [s, t, e];
}

/** a·b + c rounded once to float64 (the last addition rounds the exact sum except in ties of ties, which random data never meets). */
function fma64(a: number, b: number, c: number): number {
  const [s, t, e] = exact(a, b, c);
  return s + (t + e);
}

const f32 = new Float32Array(1), i32 = new Int32Array(f32.buffer);
/** The float32 next to x (a float32) in the direction of `up`. */
function step32(x: number, up: boolean): number {
  f32[0] = x;
  if (x === 0) i32[0] = up ? 1 : -2147483647;
  else i32[0] = i32[0]! + ((x > 0) === up ? 1 : -1);
  return f32[0]!;
}

/** a·b + c (float32 values) rounded once to float32: a·b is exact in float64, and so is p + c as s + t. */
function fma32(a: number, b: number, c: number): number {
  const p = a * b, s = p + c, bb = s - p, t = (p - (s - bb)) + (c - bb);
  const r = Math.fround(s);
  if (t === 0 || r === s) return r;
  // s lies between two float32 values; rounding it again is wrong only when it is their midpoint exactly.
  const other = step32(r, s > r);
  if (s !== (r + other) / 2) return r;
  return (t > 0) === (other > r) ? other : r;
}

/**
 * Whether the runtime's relaxed multiply-add rounds once here: −(1 + 2⁻¹¹)·1, then + (1 + 2⁻¹²)², is 2⁻²⁴ fused
 * and 0 not (the square rounds to 1 + 2⁻¹¹ on its own).
 */
function fusesHere(gemm32: Gemm, f: Float32Array): boolean {
  const x = 1 + 2 ** -12;
  f.fill(0, 0, 64);
  f[0] = -(1 + 2 ** -11); f[1] = x; // A (1, 2)
  f[8] = 1; f[16] = x;              // B (2, 8), ldb 8: column 0 is (1, x)
  gemm32("NN", 1, 8, 2, 0, 2, 32, 8, 128, 8, false);
  expect([0, 2 ** -24]).toContain(f[32]);
  return f[32] === 2 ** -24;
}

describe("fused multiply-add", () => {
  it("without relaxed SIMD, fma: true throws naming the option; a bad value or the TypeScript backend throws too", () => {
    setFlagsFromString("--no-experimental-wasm-relaxed-simd");
    const layers = (): [LSTM, Dense] => [new LSTM({ units: 4, inputDim: 2 }), new Dense({ units: 1 })];
    if (relaxedSimd()) {
      // A runtime that ships relaxed SIMD (Node 22+) has it whatever the flag says.
      const m = new Sequential(layers(), { fma: true });
      expect(m.fma).toBe(true);
    } else {
      expect(() => new Sequential(layers(), { fma: true })).toThrow(/Sequential fma: this runtime has no WebAssembly relaxed SIMD.*--experimental-wasm-relaxed-simd/);
    }
    expect(new Sequential(layers()).fma).toBe(false);
    expect(() => new Sequential(layers(), { fma: "yes" as unknown as boolean })).toThrow(ValueError);
    expect(() => new Sequential(layers(), { fma: 1 as unknown as boolean })).toThrow(/Sequential fma: expected true or false, got 1/);
    expect(() => new Sequential(layers(), { fma: true, backend: "js" })).toThrow(/Sequential fma: .*SIMD backend, got backend "js"/);
    // A loader asked for fma here says so in its own name, before it reads the bytes.
    if (!relaxedSimd()) {
      const bytes = encodeCheckpoint(new Sequential(layers()));
      expect(() => decodeCheckpoint(bytes, { fma: true })).toThrow(/^decodeCheckpoint options\.fma: this runtime has no WebAssembly relaxed SIMD/);
      expect(() => fromTfjs(toTfjs(new Sequential(layers())), { fma: true })).toThrow(/^fromTfjs fma: this runtime has no WebAssembly relaxed SIMD/);
    }
    setFlagsFromString("--experimental-wasm-relaxed-simd");
    expect(relaxedSimd()).toBe(true);
  });

  it("the fused products, every form, float32 and float64, with and without packing: bit for bit as a loop that rounds each acc + a·b once", () => {
    const memory = createMemory(64);
    const scratch = (bytes: number, region: 0 | 1): number => {
      if (bytes > 1 << 20) throw new Error(`scratch of ${bytes} bytes asked for`);
      return (2 << 20) + region * (1 << 20);
    };
    let cases = 0, differ = 0;
    const fused = fusesHere(createGemm32(memory, undefined, undefined, true), new Float32Array(memory.buffer));
    for (const dtype of ["float32", "float64"] as const) {
      const is32 = dtype === "float32", w = is32 ? 4 : 8;
      const f = is32 ? new Float32Array(memory.buffer) : new Float64Array(memory.buffer);
      const create = is32 ? createGemm32 : createGemm64;
      const fr = is32 ? Math.fround : (x: number) => x;
      const madd = !fused ? (a: number, b: number, c: number) => fr(c + fr(a * b)) : is32 ? fma32 : fma64;
      const rng = makeRng(`fma/${dtype}`);
      for (const gemm of [create(memory, undefined, undefined, true), create(memory, undefined, scratch, true)]) {
        for (const form of ["NN", "TN", "NT"] as const satisfies readonly Form[]) {
          for (const [M, N, K] of [[1, 9, 7], [3, 16, 5], [4, 8, 40], [9, 13, 33], [13, 17, 3], [8, 24, 300]] as const) {
            for (const accumulate of [false, true]) {
              const ta = form === "TN", tb = form === "NT";
              const lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
              const aOff = 2, bOff = aOff + (ta ? K : M) * lda + 3, cOff = bOff + (tb ? N : K) * ldb + 1, end = cOff + M * ldc + 4;
              f.fill(0, 0, end + 8);
              f.set(uniformArray(rng, (ta ? K : M) * lda, -1, 1), aOff);
              f.set(uniformArray(rng, (tb ? N : K) * ldb, -1, 1), bOff);
              f.set(uniformArray(rng, M * ldc, -1, 1), cOff);
              const want = f.slice(0, end + 8), plain = f.slice(0, end + 8);
              for (let i = 0; i < M; i++) {
                for (let j = 0; j < N; j++) {
                  // Aᵀ·B with K > KC_TN sums block by block, each block's sum added into C (as the kernels do).
                  const q = cOff + i * ldc + j;
                  let c = want[q]!, cp = plain[q]!;
                  for (let k0 = 0; k0 < K; k0 += ta ? KC_TN : K) {
                    let s = 0, sp = 0;
                    for (let k = k0; k < Math.min(K, k0 + (ta ? KC_TN : K)); k++) {
                      const a = ta ? want[aOff + k * lda + i]! : want[aOff + i * lda + k]!;
                      const b = tb ? want[bOff + j * ldb + k]! : want[bOff + k * ldb + j]!;
                      s = madd(a, b, s);
                      sp = fr(sp + fr(a * b));
                    }
                    c = accumulate || k0 > 0 ? fr(c + s) : s;
                    cp = accumulate || k0 > 0 ? fr(cp + sp) : sp;
                  }
                  want[q] = c;
                  plain[q] = cp;
                }
              }
              gemm(form, M, N, K, w * aOff, lda, w * bOff, ldb, w * cOff, ldc, accumulate);
              for (let q = 0; q < end + 8; q++) {
                if (!Object.is(f[q], want[q])) expect.fail(`${dtype} ${form} M=${M} N=${N} K=${K} acc=${accumulate}: element ${q}: ${f[q]} vs ${want[q]}`);
                if (f[q] !== plain[q]) differ++;
              }
              cases++;
            }
          }
        }
      }
    }
    expect(cases).toBe(2 * 2 * 3 * 6 * 2);
    expect(differ, "entries where fusing changed the result").toBeGreaterThan(100);
  });

  it("a model with fma: true trains, agrees with fma: false to rounding, and differs from it in the last bits; with 2 and 3 threads its workers fuse too", () => {
    const rng = makeRng("fma/model");
    const B = 12, T = 6, I = 3, H = 8;
    for (const dtype of ["float32", "float64"] as const) {
      const make = (fma: boolean): Sequential => {
        const m = new Sequential([new LSTM({ units: H, inputDim: I }), new Dense({ units: 1, activation: "sigmoid" })], { dtype, seed: 7, fma });
        m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: "binaryCrossentropy" });
        live.push(m);
        return m;
      };
      const xs = uniformArray(rng, B * T * I, -1, 1), ys = Array.from({ length: B }, (_, i) => i % 2);
      const x = tensor(Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => Array.from(xs.subarray((b * T + t) * I, (b * T + t + 1) * I)))), dtype);
      const y = tensor(ys.map((v) => [v]), dtype);
      const on = make(true), off = make(false);
      expect([on.fma, off.fma, on.backend]).toEqual([true, false, "wasm"]);
      const lossesOn: number[] = [], lossesOff: number[] = [];
      for (let s = 0; s < 5; s++) {
        lossesOn.push(on.trainOnBatch(x, y).loss);
        lossesOff.push(off.trainOnBatch(x, y).loss);
      }
      const tol = dtype === "float32" ? 1e-5 : 1e-12;
      for (let s = 0; s < 5; s++) expect(Math.abs(lossesOn[s]! - lossesOff[s]!) / lossesOff[s]!).toBeLessThan(tol);
      expect(lossesOn[4]!).toBeLessThan(lossesOn[0]!);
      const wOn = on.engine.params, wOff = off.engine.params;
      let differ = 0;
      for (let i = 0; i < wOn.length; i++) if (wOn[i] !== wOff[i]) differ++;
      expect(differ, `${dtype}: weights that fusing changed`).toBeGreaterThan(0);
      // Threads: the workers' products fuse as the calling thread's do, and the results agree with one thread.
      for (const threads of [2, 3]) {
        const one = make(true), many = make(true);
        setThreads(many, threads, { minFlops: 0 });
        const g1 = one.computeGradients(x, y), gn = many.computeGradients(x, y);
        const pool = many.engine.executor as unknown as ThreadPool;
        expect([pool.simdWorkers, pool.fusedWorkers]).toEqual([threads - 1, threads - 1]);
        const rtol = dtype === "float32" ? 1e-4 : 1e-12;
        for (let l = 0; l < g1.grads.length; l++) {
          const a = g1.grads[l]!.data, b = gn.grads[l]!.data;
          let scale = 0;
          for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(a[i]!));
          for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(rtol * scale);
        }
      }
    }
  });

  it("the loaders take where a model runs (backend, fma), which no file holds: checkpoints, JSON, checkpoint files, tfjs and safetensors", async () => {
    const rng = makeRng("fma/loaders");
    const B = 6, T = 5, I = 2, H = 4;
    const model = new Sequential([new LSTM({ units: H, inputDim: I }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 3, fma: true });
    model.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: "binaryCrossentropy" });
    live.push(model);
    const xs = uniformArray(rng, B * T * I, -1, 1);
    const x = tensor(Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => [xs[(b * T + t) * I]!, xs[(b * T + t) * I + 1]!])));
    const y = tensor(Array.from({ length: B }, (_, b) => [b % 2]));
    for (let s = 0; s < 3; s++) model.trainOnBatch(x, y);
    const bytes = encodeCheckpoint(model);
    const predict = (m: Sequential): number[] => Array.from(m.predict(x).data);
    const where = (m: Sequential): [string, boolean] => { live.push(m); return [m.backend, m.fma]; };

    // A checkpoint does not hold fma: by default a model saved with it loads without it.
    const plain = decodeCheckpoint(bytes), fused = decodeCheckpoint(bytes, { fma: true, source: "backup" }), js = decodeCheckpoint(bytes, { backend: "js" });
    expect([where(plain), where(fused), where(js)]).toEqual([["wasm", false], ["wasm", true], ["js", false]]);
    expect(fused.optimizer!.iterations).toBe(3);
    // float64: the TypeScript kernels and the unfused SIMD ones give the same bits; fused agrees to rounding.
    expect(predict(js)).toEqual(predict(plain));
    const pf = predict(fused), pp = predict(plain);
    for (let i = 0; i < pp.length; i++) expect(Math.abs(pf[i]! - pp[i]!)).toBeLessThan(1e-12);
    // One more step on each: the fused copy's weights move apart from the plain one's in the last bits, as the model's own do.
    model.trainOnBatch(x, y); fused.trainOnBatch(x, y); plain.trainOnBatch(x, y);
    expect(Array.from(fused.engine.params)).toEqual(Array.from(model.engine.params));
    expect(Array.from(plain.engine.params)).not.toEqual(Array.from(model.engine.params));
    expect(where(checkpointFromJSON(JSON.parse(JSON.stringify(model)), { fma: true }))).toEqual(["wasm", true]);
    expect(where(checkpointFromJSON(JSON.parse(JSON.stringify(model)), "copy"))).toEqual(["wasm", false]);

    const dir = mkdtempSync(join(tmpdir(), "longshort-fma-"));
    try {
      const ckpt = join(dir, "m.ckpt"), st = join(dir, "m.safetensors");
      saveCheckpointSync(model, ckpt);
      expect(where(loadCheckpointSync(ckpt, { fma: true }))).toEqual(["wasm", true]);
      expect(where(await loadCheckpoint(ckpt, { backend: "js" }))).toEqual(["js", false]);
      expect(where(await loadCheckpoint(ckpt))).toEqual(["wasm", false]);
      await expect(loadCheckpoint(ckpt, { backend: "gpu" } as never)).rejects.toThrow(/^loadCheckpoint options\.backend: expected "js" or "wasm", got "gpu"/);
      expect(() => loadCheckpointSync(ckpt, { fma: true, source: "x" } as never)).toThrow(/loadCheckpointSync options: unknown option "source"/);
      await saveSafetensors(model, st);
      expect(where(await loadSafetensors(st, undefined, { fma: true }))).toEqual(["wasm", true]);
      await expect(loadSafetensors(st, undefined, { fma: 1 } as never)).rejects.toThrow(/^loadSafetensors options\.fma: expected true or false, got 1/);
      const target = new Sequential([new LSTM({ units: H, inputDim: I }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 4 });
      live.push(target);
      await expect(loadSafetensors(st, target, { fma: true })).rejects.toThrow(/^loadSafetensors options: backend and fma choose how a new model runs/);
      expect((await loadSafetensors(st, target)).fma).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    expect(where(fromTfjs(toTfjs(model), { fma: true, dtype: "float64", seed: 5 }))).toEqual(["wasm", true]);
    expect(where(fromTfjs(toTfjs(model), { backend: "js" }))).toEqual(["js", false]);
    expect(where(fromSafetensors(toSafetensors(model), undefined, { fma: true }))).toEqual(["wasm", true]);
    expect(where(fromSafetensors(toSafetensors(model), undefined, "file"))).toEqual(["wasm", false]);
    const into = new Sequential([new LSTM({ units: H, inputDim: I }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 4 });
    live.push(into);
    expect(() => fromSafetensors(toSafetensors(model), into, { fma: true })).toThrow(/fromSafetensors options: backend and fma choose how a new model runs/);

    // Bad options name the loader and the option; nothing is built.
    expect(() => decodeCheckpoint(bytes, { fma: 1 } as never)).toThrow(/^decodeCheckpoint options\.fma: expected true or false, got 1/);
    expect(() => decodeCheckpoint(bytes, { fam: true } as never)).toThrow(/decodeCheckpoint options: unknown option "fam" \(did you mean "fma"\?\)/);
    expect(() => decodeCheckpoint(bytes, { fma: true, backend: "js" })).toThrow(/^decodeCheckpoint options\.fma: .*SIMD backend, got backend "js"/);
    expect(() => decodeCheckpoint(bytes, 42 as never)).toThrow(/^decodeCheckpoint options: expected \{ source\?, backend\?, fma\? \} or a source string, got 42/);
    expect(() => decodeCheckpoint(bytes, { source: 7 } as never)).toThrow(/^decodeCheckpoint options\.source: expected a string, got 7/);
    expect(() => decodeCheckpoint(bytes.subarray(0, 10), { source: "backup" })).toThrow(/^backup: /);
    expect(() => checkpointFromJSON({}, { backend: "gpu" } as never)).toThrow(/^checkpointFromJSON options\.backend: expected "js" or "wasm", got "gpu"/);
    expect(() => fromTfjs(toTfjs(model), { fma: "yes" } as never)).toThrow(/^fromTfjs fma: expected true or false, got "yes"/);
  });

  it("truncated BPTT on fused models: a sequence fed in chunks equals one call bit for bit, and one window reaching back past T equals trainOnBatch", () => {
    const rng = makeRng("fma/tbptt");
    const B = 3, T = 23, I = 2, H = 6;
    for (const dtype of ["float32", "float64"] as const) {
      const make = (): Sequential => {
        const m = new Sequential([
          new LSTM({ units: H, inputDim: I, stateful: true, batchSize: B }), new Dense({ units: 1, activation: "sigmoid" }),
        ], { dtype, seed: 9, fma: true });
        m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: "binaryCrossentropy" });
        live.push(m);
        return m;
      };
      const xs = uniformArray(rng, B * T * I, -1, 1);
      const seq = (s: number, e: number) => tensor(Array.from({ length: B }, (_, b) => Array.from({ length: e - s }, (_, t) => [xs[(b * T + s + t) * I]!, xs[(b * T + s + t) * I + 1]!])), dtype);
      const y = tensor(Array.from({ length: B }, (_, b) => [b % 2]), dtype);
      const a = make(), b = make();
      expect([a.fma, b.fma]).toEqual([true, true]);
      const ra = new TruncatedBPTT(a, { windowLength: 5, backpropLength: 8 }).trainSequence(seq(0, T), y);
      const tb = new TruncatedBPTT(b, { windowLength: 5, backpropLength: 8 });
      const losses: number[] = [];
      for (let s = 0; s < T; s += 7) losses.push(...tb.trainSequence(seq(s, Math.min(T, s + 7)), y, { endOfSequence: s + 7 >= T }).losses);
      expect(losses).toEqual(ra.losses);
      expect(Array.from(b.engine.params)).toEqual(Array.from(a.engine.params));
      // One window of all T steps, reaching back further: the same update as trainOnBatch on the whole sequence.
      const c = make(), d = make();
      const rc = new TruncatedBPTT(c, { windowLength: T, backpropLength: T + 5 }).trainSequence(seq(0, T), y);
      expect(rc.loss).toBe(d.trainOnBatch(seq(0, T), y).loss);
      expect(Array.from(c.engine.params)).toEqual(Array.from(d.engine.params));
    }
  });
});
