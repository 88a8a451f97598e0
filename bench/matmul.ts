/**
 * The three matmul forms at the shapes one training step uses, per shape of PERFORMANCE.md:
 *   per step   h_{t-1} · Wr        matmulNN (B, 4H, H)     the only inherently sequential product
 *              dZ_t · Wrᵀ          matmulNT (B, H, 4H)     dL/dh_{t-1} in backward
 *   per window X · W               matmulNN (T·B, 4H, I)   input projection for all steps at once
 *              Xᵀ · dZ             matmulTN (I, 4H, T·B)   dKernel
 *              Hᵀ · dZ             matmulTN (H, 4H, T·B)   dRecurrentKernel
 *              dZ · Wᵀ             matmulNT (T·B, I, 4H)   dx
 * Each case first compares 300 random entries of its result with a plain dot product (float64, 1e-12),
 * then times. FLOPs = 2·M·N·K.
 *
 * `wasm…:` cases time the WebAssembly SIMD products (src/wasm/gemm.ts: f64x2 with 4×4 tiles, and as
 * `wasm…32:` f32x4 with 4×8 tiles on float32 operands), packing in a scratch region as the backend's arena
 * does, on the same products, their operands in a WebAssembly.Memory, checked first (bit for bit: they sum in
 * the dot product's order; Aᵀ·B with K > 256 to rounding, as it sums in K blocks), beside the TypeScript kernels.
 *
 * `wasmPeak…:` cases time what this core's vector pipes allow, with no memory traffic at all: a loop of
 * acc += x·y on independent accumulators held in registers (see peakCase). The products can be no faster.
 */
import { matmulNN, matmulNT, matmulTN } from "../src/tensor/kernels.js";
import { HOLD_NEW, HOLD_SAME, KC_TN, compiled, createGemm32, createGemm64, createMemory } from "../src/wasm/gemm.js";
import { Code, F32, F64, I32, V128, assemble } from "../src/wasm/assembler.js";
import {
  type Case, type Options, type Shape, type Spec, type Result, SHAPES, rng, randomArray, runSpecs, standalone, FMA,
} from "./harness.js";

type Form = "NN" | "TN" | "NT";
const KERNELS = { NN: matmulNN, TN: matmulTN, NT: matmulNT } as const;

/** The matmuls of one training step at shape s, with their roles. */
export function stepMatmuls(s: Shape): { form: Form; M: number; N: number; K: number; role: string; perStep: boolean }[] {
  const { B, T, I, H } = s, G = 4 * H;
  return [
    { form: "NN", M: B, N: G, K: H, role: "h·Wr", perStep: true },
    { form: "NT", M: B, N: H, K: G, role: "dZ·Wrᵀ", perStep: true },
    { form: "NN", M: T * B, N: G, K: I, role: "X·W", perStep: false },
    { form: "TN", M: I, N: G, K: T * B, role: "Xᵀ·dZ", perStep: false },
    { form: "TN", M: H, N: G, K: T * B, role: "Hᵀ·dZ", perStep: false },
    { form: "NT", M: T * B, N: I, K: G, role: "dZ·Wᵀ", perStep: false },
  ];
}

export function matmulName(form: Form, M: number, N: number, K: number, label: string): string {
  return `matmul${form}:M=${M},N=${N},K=${K} (${label})`;
}

/** One matmul case on dense float64 operands; accumulate false. */
export function matmulCase(form: Form, M: number, N: number, K: number, label: string, seed = 1): Case {
  const r = rng(seed);
  const transA = form === "TN", transB = form === "NT";
  const lda = transA ? M : K, ldb = transB ? K : N;
  const A = randomArray(Float64Array, M * K, r), B = randomArray(Float64Array, K * N, r);
  const C = new Float64Array(M * N);
  const f = KERNELS[form];
  return {
    name: matmulName(form, M, N, K, label),
    group: "matmul",
    flops: 2 * M * N * K,
    check: () => {
      f(M, N, K, A, 0, lda, B, 0, ldb, C, 0, N, false);
      const pick = rng(seed + 7);
      for (let n = 0; n < 300; n++) {
        const i = Math.floor(pick() * M), j = Math.floor(pick() * N);
        let s = 0, scale = 0;
        for (let k = 0; k < K; k++) {
          const a = transA ? A[k * lda + i]! : A[i * lda + k]!;
          const b = transB ? B[j * ldb + k]! : B[k * ldb + j]!;
          s += a * b;
          scale += Math.abs(a * b);
        }
        const err = Math.abs(C[i * N + j]! - s);
        if (!(err <= 1e-12 * scale)) throw new Error(`C[${i}, ${j}] = ${C[i * N + j]} vs ${s} (error ${err.toExponential(2)})`);
      }
    },
    run: () => f(M, N, K, A, 0, lda, B, 0, ldb, C, 0, N, false),
  };
}

/** The SIMD kernel on one product of the form, operands in a WebAssembly.Memory; checked like matmulCase. */
export function wasmCase(form: Form, M: number, N: number, K: number, label: string, seed = 1, f32 = false, held = false): Case {
  const w = f32 ? 4 : 8;
  const bytes = w * (M * K + K * N + M * N);
  // Room after the operands for A·Bᵀ's packed Bᵀ (K × N), as a model's arena gives it, and as much again for a
  // held B (region 1).
  const scratchAt = (Math.ceil(bytes / 16) + 1) * 16, room = (Math.ceil((w * K * N) / 16) + 1) * 16;
  const memory = createMemory(Math.ceil((scratchAt + 2 * room) / 65536) + 1);
  const scratch = (need: number, region: 0 | 1): number => {
    if (need > w * K * N) throw new Error(`scratch of ${need} bytes asked for, ${w * K * N} set aside`);
    return scratchAt + region * room;
  };
  const gemm = f32 ? createGemm32(memory, undefined, scratch, FMA) : createGemm64(memory, undefined, scratch, FMA);
  const f = f32 ? new Float32Array(memory.buffer) : new Float64Array(memory.buffer);
  const r = rng(seed);
  const transA = form === "TN", transB = form === "NT";
  const lda = transA ? M : K, ldb = transB ? K : N;
  const aOff = 0, bOff = M * K, cOff = M * K + K * N;
  f.set(randomArray(Float64Array, M * K, r), aOff);
  f.set(randomArray(Float64Array, K * N, r), bOff);
  // held: B packed by the first call (HOLD_NEW, in the check) and reused by the timed ones, as a step's loop does
  let first = true;
  const run = (): void => {
    gemm(form, M, N, K, w * aOff, lda, w * bOff, ldb, w * cOff, N, false, held ? (first ? HOLD_NEW : HOLD_SAME) : 0);
    first = false;
  };
  return {
    name: `wasm${form}${f32 ? "32" : ""}:M=${M},N=${N},K=${K} (${label}${held ? ", held" : ""})`,
    group: "matmul",
    flops: 2 * M * N * K,
    check: () => {
      run();
      const pick = rng(seed + 7);
      for (let n = 0; n < 300; n++) {
        const i = Math.floor(pick() * M), j = Math.floor(pick() * N);
        let s = 0, scale = 0;
        for (let k = 0; k < K; k++) {
          const a = transA ? f[aOff + k * lda + i]! : f[aOff + i * lda + k]!;
          const b = transB ? f[bOff + j * ldb + k]! : f[bOff + k * ldb + j]!;
          s = f32 ? Math.fround(s + Math.fround(a * b)) : s + a * b; // float32: every product and sum rounded
          scale += Math.abs(a * b);
        }
        const got = f[cOff + i * N + j]!;
        if ((form === "TN" && K > KC_TN) || FMA) {
          // K-blocked: the same sums in another order; fused (--fma): each step rounded once. Equal to rounding.
          if (!(Math.abs(got - s) <= (f32 ? 1e-5 : 1e-12) * scale)) throw new Error(`C[${i}, ${j}] = ${got} vs ${s}`);
        } else if (s !== got) throw new Error(`C[${i}, ${j}] = ${got} vs ${s} (the kernel sums in the same order: bit for bit)`);
      }
    },
    run,
  };
}

/**
 * The ceiling: n passes of acc_q += x·y_q over `acc` accumulators (f32x4 or f64x2 locals, never in memory), the
 * multiply and the add separate or, fused (--fma), relaxed SIMD's multiply-add; FLOPs = 2·lanes·acc·n. Fused needs
 * more accumulators than separate: each chain waits for its multiply-add's whole latency. 8 and 12 were the best
 * counts on the Zen 3 machine (16 spill). Checked first against the same recurrence in scalar arithmetic (the
 * separate form rounds as float32 or float64 does: bit for bit; fused to rounding).
 */
const peakAccumulators = (fused: boolean): number => (fused ? 12 : 8);
const peakName = (f32: boolean, fused: boolean): string =>
  `wasmPeak${f32 ? "32" : ""}:${fused ? "fused multiply-add" : "multiply, add"} (${peakAccumulators(fused)} accumulators)`;

export function peakCase(f32: boolean, fused: boolean): Case {
  const lanes = f32 ? 4 : 2, acc = peakAccumulators(fused);
  const c = new Code([I32]);
  const k = c.local(I32);
  const accs = Array.from({ length: acc }, () => c.local(V128));
  const x = c.local(V128), y = [c.local(V128), c.local(V128)];
  const splat = (v: number): void => { if (f32) c.f32(v).f32x4Splat(); else c.f64(v).f64x2Splat(); };
  const X = 1.0000001, Y = [0.9999999, 1.00001];
  splat(X); c.set(x);
  splat(Y[0]!); c.set(y[0]!);
  splat(Y[1]!); c.set(y[1]!);
  for (let q = 0; q < acc; q++) { splat(q); c.set(accs[q]!); }
  c.i32(0).set(k);
  c.block().loop();
  c.get(k).get(0).i32GeS().brIf(1);
  for (let q = 0; q < acc; q++) {
    if (fused) { c.get(x).get(y[q % 2]!).get(accs[q]!); if (f32) c.f32x4RelaxedMadd(); else c.f64x2RelaxedMadd(); }
    else { c.get(accs[q]!).get(x).get(y[q % 2]!); if (f32) c.f32x4Mul().f32x4Add(); else c.f64x2Mul().f64x2Add(); }
    c.set(accs[q]!);
  }
  c.get(k).i32(1).i32Add().set(k);
  c.br(0).end().end();
  // lane 0 of acc_0 + acc_1 + … (in that order), so that nothing in the loop is dead
  c.get(accs[0]!);
  for (let q = 1; q < acc; q++) { c.get(accs[q]!); if (f32) c.f32x4Add(); else c.f64x2Add(); }
  if (f32) c.f32x4ExtractLane(0); else c.f64x2ExtractLane(0);
  const bytes = assemble([{ name: "peak", params: [I32], results: [f32 ? F32 : F64], code: c }], { pages: 1 });
  // The WebAssembly global as far as used here (the project's lib has no DOM, so it has no value declaration).
  const WA = (globalThis as unknown as { WebAssembly: { Instance: new (m: object, imports: object) => { exports: Record<string, unknown> } } }).WebAssembly;
  const instance = new WA.Instance(compiled(`peak ${f32} ${fused}`, () => bytes), { env: { memory: createMemory(1) } });
  const peak = instance.exports.peak as (n: number) => number;
  const n = 1 << 20;
  const fr = f32 ? Math.fround : (v: number): number => v;
  return {
    name: peakName(f32, fused),
    group: "matmul",
    flops: 2 * lanes * acc * n,
    check: () => {
      const m = 1000, got = peak(m);
      let want = 0;
      for (let q = 0; q < acc; q++) {
        let a = q;
        const xv = fr(X), yv = fr(Y[q % 2]!);
        for (let i = 0; i < m; i++) a = fused ? fr(a + xv * yv) : fr(a + fr(xv * yv));
        want = q === 0 ? a : fr(want + a);
      }
      if (fused ? !(Math.abs(got - want) <= 1e-5 * Math.abs(want)) : got !== want) throw new Error(`sum ${got}, expected ${want}`);
    },
    run: () => { peak(n); },
  };
}

export function matmulSpecs(opts: Options): Spec[] {
  const shapes = opts.quick ? SHAPES.filter((s) => s.name === "S1" || s.name === "S2") : SHAPES.filter((s) => s.name !== "S0");
  const out: Spec[] = [];
  for (const s of shapes) {
    for (const m of stepMatmuls(s)) {
      const label = `${s.name} ${m.role}`;
      out.push({ name: matmulName(m.form, m.M, m.N, m.K, label), group: "matmul", build: () => matmulCase(m.form, m.M, m.N, m.K, label) });
      out.push({ name: `wasm${m.form}:M=${m.M},N=${m.N},K=${m.K} (${label})`, group: "matmul", build: () => wasmCase(m.form, m.M, m.N, m.K, label) });
      out.push({ name: `wasm${m.form}32:M=${m.M},N=${m.N},K=${m.K} (${label})`, group: "matmul", build: () => wasmCase(m.form, m.M, m.N, m.K, label, 1, true) });
      if (m.perStep) {
        // the recurrent products as a step's loop runs them: the recurrent kernel packed once, reused at every step
        for (const f32 of [false, true]) {
          out.push({ name: `wasm${m.form}${f32 ? "32" : ""}:M=${m.M},N=${m.N},K=${m.K} (${label}, held)`, group: "matmul", build: () => wasmCase(m.form, m.M, m.N, m.K, label, 1, f32, true) });
        }
      }
    }
  }
  for (const f32 of [true, false]) {
    for (const fused of FMA ? [false, true] : [false]) out.push({ name: peakName(f32, fused), group: "matmul", build: () => peakCase(f32, fused) });
  }
  return out;
}

export async function runMatmul(opts: Options, results: Result[]): Promise<void> {
  runSpecs(opts, "matmul: the products of one training step (float64; FLOPs = 2·M·N·K)", matmulSpecs(opts), results);
}

await standalone("matmul", import.meta.url, runMatmul);
