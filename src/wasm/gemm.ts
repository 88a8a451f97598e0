/**
 * The SIMD products: C = (accumulate ? C : 0) + op(A)·op(B) for the three forms the engine uses (A·B, Aᵀ·B,
 * A·Bᵀ), in WebAssembly SIMD128, f64x2 and f32x4, over row-major matrices that live in one WebAssembly.Memory
 * (pointers are byte offsets into it, leading dimensions count elements). The SIMD backend (src/wasm/arena.ts,
 * `Sequential({ backend: "wasm" })`) runs them on the model's own buffers, in place.
 *
 * Each kernel sweeps C in tiles, 4×4 in float64 and 4×8 in float32: per step of k, two vectors of one operand and
 * four splatted values of the other make 8 vector products into 8 accumulators that stay in registers (V8 gives
 * wasm xmm0–15: bigger tiles spill; PERFORMANCE.md). Each entry is summed in k order from zero, with one rounding
 * per multiply and per add, and added to C at the end when accumulating, exactly as `naiveMatmul` does: the
 * results are bit-identical to it (float32: to a naive loop that rounds every product and sum to float32). The
 * edges (rows past the last multiple of 4, columns likewise) run a scalar loop in the same order.
 *
 * Fused (`gemmModule(…, true)`, where the runtime has relaxed SIMD): every kernel, the edges included, adds each
 * product with relaxed SIMD's multiply-add, which rounds once where the CPU fuses it (x64 with FMA3, arm64): the
 * same sums in the same order, each step rounded once instead of twice. On this repository's Zen 3 machine the
 * float32 tiles then ran at 45–49 GFLOP/s over the step's panel shapes, against 33–36 with a separate multiply and
 * add, paired call by call: the multiply and the add each take one of the four vector pipes, and the splats of A
 * take the rest.
 *
 * Given a scratch region (the arena gives one), the products pack first: B, one panel of columns at a time, in
 * strips that the tiles read as one contiguous run (`pack`); A·Bᵀ then runs in the A·B tiles on the packed Bᵀ,
 * and Aᵀ·B on a transposed copy of A (`transpose`); the transpositions of A, and float32's of Bᵀ, go a block of
 * lanes at a time through registers (`transpose`, `packT32`). Packing moves values and keeps every sum as it
 * was. Aᵀ·B with a long K is also cut into blocks of K (`KC_TN`), which does change the order of its additions.
 */
import { Code, I32, V128, F32, F64, assemble, type FunctionDef } from "./assembler.js";

/**
 * The WebAssembly API, typed here as far as it is used: the core is type-checked without the DOM's and Node's
 * declarations in one configuration and with them in the other, and this reads the same in both.
 */
const WA = (globalThis as unknown as {
  WebAssembly: {
    Module: new (bytes: Uint8Array) => object;
    Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
    Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
    validate(bytes: Uint8Array): boolean;
  };
}).WebAssembly;

/** A WebAssembly.Memory, as far as the kernels use it. */
export interface WasmMemory { readonly buffer: ArrayBuffer | SharedArrayBuffer }

/**
 * Compiled modules by key: every model's arena instantiates the same bytes, so they are assembled and compiled
 * once per thread (~3 ms) and each arena only instantiates them.
 */
const MODULES = new Map<string, object>();
export function compiled(key: string, bytes: () => Uint8Array): object {
  let m = MODULES.get(key);
  if (!m) MODULES.set(key, m = new WA.Module(bytes()));
  return m;
}

/** A WebAssembly.Memory of `pages` 64 KiB pages. */
export function createMemory(pages: number): WasmMemory {
  return new WA.Memory({ initial: pages });
}

/** Whether this runtime accepts the bytes as a module (SIMD included). */
export function validModule(bytes: Uint8Array): boolean {
  return WA.validate(bytes);
}

const P = [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32] as const;
// Parameters of every function: M, N, K, a, lda, b, ldb, c, ldc, accumulate (0 or 1).
const M_ = 0, N_ = 1, K_ = 2, A_ = 3, LDA = 4, B_ = 5, LDB = 6, C_ = 7, LDC = 8, ACC = 9;

/** The matrix forms: C = A·B, Aᵀ·B (dKernel, dRecurrentKernel), A·Bᵀ (dh, dx). */
export type Form = "NN" | "TN" | "NT";

/**
 * The loops every tile kernel shares: rows of tiles (i += 4), columns of tiles (j += 4), and per tile the k
 * loop, around the form's own `setup` (before k), `step` (one k) and `store` (after k). Locals i, j, k and the
 * byte strides come with the frame.
 */
function tileLoops(
  c: Code, i: number, j: number, k: number,
  setup: () => void, step: () => void, store: () => void, cols = 4,
): void {
  c.i32(0).set(i);
  c.block().loop(); // rows of tiles
  c.get(i).get(M_).i32GeS().brIf(1);
  c.i32(0).set(j);
  c.block().loop(); // columns of tiles
  c.get(j).get(N_).i32GeS().brIf(1);
  setup();
  c.i32(0).set(k);
  c.block().loop();
  c.get(k).get(K_).i32GeS().brIf(1);
  step();
  c.get(k).i32(1).i32Add().set(k);
  c.br(0).end().end();
  store();
  c.get(j).i32(cols).i32Add().set(j);
  c.br(0).end().end();
  c.get(i).i32(4).i32Add().set(i);
  c.br(0).end().end();
}

/**
 * acc ← acc + x·y on vector locals (f64x2, or f32x4): the product and the sum each rounded, or, fused, relaxed
 * SIMD's multiply-add, rounded once where the CPU fuses it. Every kernel's k step adds its products through this.
 */
function mulAdd(c: Code, f64: boolean, fused: boolean, acc: number, x: number, y: number): void {
  if (fused) {
    c.get(x).get(y).get(acc);
    if (f64) c.f64x2RelaxedMadd(); else c.f32x4RelaxedMadd();
  } else {
    c.get(acc).get(x).get(y);
    if (f64) c.f64x2Mul().f64x2Add(); else c.f32x4Mul().f32x4Add();
  }
  c.set(acc);
}

/**
 * A 4×4 tile kernel over the first M, N (multiples of 4) for one form. Every sum starts at zero and adds the
 * products in k order, and C is added at the end when accumulating, exactly as `naiveMatmul`.
 *
 * - NN and NT keep row pairs of C in the accumulators: acc[2r + h] = C[i + r, j + 2h … j + 2h + 1]; each k
 *   splats A[i + r, k] and multiplies it into B's values for columns j … j + 3 (two loads from B's row k for NN,
 *   four strided loads gathered into two vectors for NT).
 * - TN keeps column pairs: acc[2c + h] = C[i + 2h … i + 2h + 1, j + c]; each k loads Aᵀ's row (A's row k,
 *   contiguous) and splats B[k, j + c].
 */
function tiles(form: Form, packed = false, fused = false): FunctionDef {
  const c = new Code(P);
  const fma = (acc: number, x: number, y: number): void => mulAdd(c, true, fused, acc, x, y);
  const i = c.local(I32), j = c.local(I32), k = c.local(I32);
  const ldaB = c.local(I32), ldbB = c.local(I32), ldcB = c.local(I32);
  const pa = [c.local(I32), c.local(I32), c.local(I32), c.local(I32)];
  const pb = [c.local(I32), c.local(I32), c.local(I32), c.local(I32)];
  const pc = c.local(I32);
  const acc = Array.from({ length: 8 }, () => c.local(V128));
  const v0 = c.local(V128), v1 = c.local(V128), s = c.local(V128);
  c.get(LDA).i32(3).i32Shl().set(ldaB);
  if (packed) c.i32(32).set(ldbB); // a strip's rows: 4 values, 32 bytes
  else c.get(LDB).i32(3).i32Shl().set(ldbB);
  c.get(LDC).i32(3).i32Shl().set(ldcB);
  /** B[0, j]: in a packed B, strip j / 4 starts j·K values in. */
  const bCol = (): void => {
    if (packed) c.get(B_).get(j).get(K_).i32Mul().i32(3).i32Shl().i32Add().set(pb[0]!);
    else c.get(B_).get(j).i32(3).i32Shl().i32Add().set(pb[0]!);
  };
  const zero = (): void => { for (let q = 0; q < 8; q++) c.f64(0).f64x2Splat().set(acc[q]!); };
  const pcSet = (): void => { c.get(C_).get(i).get(LDC).i32Mul().get(j).i32Add().i32(3).i32Shl().i32Add().set(pc); };
  /** pointers[0] = base + (row·ld + col)·8; pointers[r] = pointers[r-1] + stride for r = 1 … 3 */
  const rows = (ptrs: number[], base: number, row: number, ld: number, col: number | null, strideB: number): void => {
    c.get(base).get(row).get(ld).i32Mul();
    if (col !== null) c.get(col).i32Add();
    c.i32(3).i32Shl().i32Add().set(ptrs[0]!);
    for (let r = 1; r < 4; r++) c.get(ptrs[r - 1]!).get(strideB).i32Add().set(ptrs[r]!);
  };
  /** C[row pair] = (acc ? C : 0) + sum, as a vector (NN, NT). */
  const storeRows = (): void => {
    for (let r = 0; r < 4; r++) {
      for (let h = 0; h < 2; h++) {
        const q = acc[2 * r + h]!;
        c.block();
        c.get(ACC).i32Eqz().brIf(0);
        c.get(pc).get(ldcB).i32(r).i32Mul().i32Add().v128Load(16 * h).get(q).f64x2Add().set(q);
        c.end();
        c.get(pc).get(ldcB).i32(r).i32Mul().i32Add().get(q).v128Store(16 * h);
      }
    }
  };
  if (form === "NN" || form === "NT") {
    tileLoops(c, i, j, k, () => {
      pcSet();
      zero();
      rows(pa, A_, i, LDA, null, ldaB); // A[i + r, 0]
      if (form === "NN") bCol(); // B[0, j]
      else rows(pb, B_, j, LDB, null, ldbB); // B[j + r, 0]: Bᵀ's columns j … j + 3
    }, () => {
      if (form === "NN") {
        c.get(pb[0]!).v128Load(0).set(v0);
        c.get(pb[0]!).v128Load(16).set(v1);
        c.get(pb[0]!).get(ldbB).i32Add().set(pb[0]!);
      } else {
        // (B[j, k], B[j + 1, k]) and (B[j + 2, k], B[j + 3, k]), gathered from four rows of B.
        c.get(pb[0]!).v128Load64Splat(0).get(pb[1]!).f64Load().f64x2ReplaceLane(1).set(v0);
        c.get(pb[2]!).v128Load64Splat(0).get(pb[3]!).f64Load().f64x2ReplaceLane(1).set(v1);
        for (let r = 0; r < 4; r++) c.get(pb[r]!).i32(8).i32Add().set(pb[r]!);
      }
      for (let r = 0; r < 4; r++) {
        c.get(pa[r]!).v128Load64Splat(0).set(s);
        fma(acc[2 * r]!, s, v0);
        fma(acc[2 * r + 1]!, s, v1);
        c.get(pa[r]!).i32(8).i32Add().set(pa[r]!);
      }
    }, storeRows);
  } else {
    tileLoops(c, i, j, k, () => {
      pcSet();
      zero();
      c.get(A_).get(i).i32(3).i32Shl().i32Add().set(pa[0]!); // A[0, i]: Aᵀ's row i starts there, along A's row 0
      bCol(); // B[0, j]
    }, () => {
      c.get(pa[0]!).v128Load(0).set(v0);
      c.get(pa[0]!).v128Load(16).set(v1);
      for (let col = 0; col < 4; col++) {
        c.get(pb[0]!).v128Load64Splat(8 * col).set(s);
        fma(acc[2 * col]!, v0, s);
        fma(acc[2 * col + 1]!, v1, s);
      }
      c.get(pa[0]!).get(ldaB).i32Add().set(pa[0]!);
      c.get(pb[0]!).get(ldbB).i32Add().set(pb[0]!);
    }, () => {
      // Column pairs to rows: lane l of acc[2col + h] is C[i + 2h + l, j + col].
      for (let col = 0; col < 4; col++) {
        for (let h = 0; h < 2; h++) {
          for (let l = 0; l < 2; l++) {
            const row = 2 * h + l;
            const addr = (): void => { c.get(pc).get(ldcB).i32(row).i32Mul().i32Add(); };
            // C = accumulate ? C + sum : sum (C is read either way; select keeps the right one).
            addr();
            addr();
            c.f64Load(8 * col).get(acc[2 * col + h]!).f64x2ExtractLane(l).f64Add();
            c.get(acc[2 * col + h]!).f64x2ExtractLane(l);
            c.get(ACC).select();
            c.f64Store(8 * col);
          }
        }
      }
    });
  }
  return { name: `tiles${form}${packed ? "P" : ""}`, params: P, results: [], code: c };
}

/**
 * The scalar loop for a block of C (any form), in float64 (`w` 8) or float32 (`w` 4): rows [i0, M) × columns
 * [j0, N), each entry summed in k order from zero and added to C at the end when accumulating, as
 * `naiveMatmul` (in float32 every product and sum is rounded to float32). Extra parameters: i0, j0, transA,
 * transB.
 */
function edge(w: 4 | 8, fused = false): FunctionDef {
  const params = [...P, I32, I32, I32, I32] as const;
  const I0 = 10, J0 = 11, TA = 12, TB = 13, sh = w === 8 ? 3 : 2;
  const c = new Code(params);
  const i = c.local(I32), j = c.local(I32), k = c.local(I32), pa = c.local(I32), pb = c.local(I32), pc = c.local(I32);
  const aStep = c.local(I32), bStep = c.local(I32);
  const s = c.local(w === 8 ? F64 : F32);
  // Fused: the sum runs in lane 0 of a vector, through relaxed SIMD's multiply-add (WebAssembly has no scalar one),
  // so that the edges round as the tiles do.
  const sv = c.local(V128);
  const load = (): void => { if (w === 8) c.f64Load(); else c.f32Load(); };
  const add = (): void => { if (w === 8) c.f64Add(); else c.f32Add(); };
  // Along k, A moves by one row (transposed) or one element; B by one element (transposed) or one row.
  c.get(LDA).i32(sh).i32Shl().i32(w).get(TA).select().set(aStep);
  c.i32(w).get(LDB).i32(sh).i32Shl().get(TB).select().set(bStep);
  c.get(I0).set(i);
  c.block().loop();
  c.get(i).get(M_).i32GeS().brIf(1);
  c.get(J0).set(j);
  c.block().loop();
  c.get(j).get(N_).i32GeS().brIf(1);
  c.get(C_).get(i).get(LDC).i32Mul().get(j).i32Add().i32(sh).i32Shl().i32Add().set(pc);
  if (w === 8) c.f64(0); else c.f32(0);
  c.set(s);
  // pa = A + (transA ? i : i·lda)·w, pb = B + (transB ? j·ldb : j)·w
  c.get(A_).get(i).get(i).get(LDA).i32Mul().get(TA).select().i32(sh).i32Shl().i32Add().set(pa);
  c.get(B_).get(j).get(LDB).i32Mul().get(j).get(TB).select().i32(sh).i32Shl().i32Add().set(pb);
  if (fused) { if (w === 8) c.f64(0).f64x2Splat(); else c.f32(0).f32x4Splat(); c.set(sv); }
  c.i32(0).set(k);
  c.block().loop();
  c.get(k).get(K_).i32GeS().brIf(1);
  if (fused) {
    if (w === 8) c.get(pa).v128Load64Splat().get(pb).v128Load64Splat().get(sv).f64x2RelaxedMadd();
    else c.get(pa).v128Load32Splat().get(pb).v128Load32Splat().get(sv).f32x4RelaxedMadd();
    c.set(sv);
  } else {
    c.get(s).get(pa);
    load();
    c.get(pb);
    load();
    if (w === 8) c.f64Mul(); else c.f32Mul();
    add();
    c.set(s);
  }
  c.get(pa).get(aStep).i32Add().set(pa);
  c.get(pb).get(bStep).i32Add().set(pb);
  c.get(k).i32(1).i32Add().set(k);
  c.br(0).end().end();
  if (fused) { c.get(sv); if (w === 8) c.f64x2ExtractLane(0); else c.f32x4ExtractLane(0); c.set(s); }
  c.block();
  c.get(ACC).i32Eqz().brIf(0);
  c.get(pc);
  load();
  c.get(s);
  add();
  c.set(s);
  c.end();
  c.get(pc).get(s);
  if (w === 8) c.f64Store(); else c.f32Store();
  c.get(j).i32(1).i32Add().set(j);
  c.br(0).end().end();
  c.get(i).i32(1).i32Add().set(i);
  c.br(0).end().end();
  return { name: w === 8 ? "edge" : "edge32", params, results: [], code: c };
}

/**
 * The float32 tile kernels: 4 rows × 8 columns (f32x4; the 4×8 tile PERFORMANCE.md measured best), the same
 * layouts as float64 (NN and NT: row pairs of four columns, acc[2r + h] = C[i + r, j + 4h … j + 4h + 3];
 * TN: columns, acc[c] = C[i … i + 3, j + c]). Sums in float32, in k order, as `naiveMatmul` would round them in
 * float32 (each product and each sum rounded once): the test compares with exactly that.
 */
function tiles32(form: Form, packed = false, fused = false): FunctionDef {
  const c = new Code(P);
  const fma = (acc: number, x: number, y: number): void => mulAdd(c, false, fused, acc, x, y);
  const i = c.local(I32), j = c.local(I32), k = c.local(I32);
  const ldaB = c.local(I32), ldbB = c.local(I32), ldcB = c.local(I32);
  const pa = [c.local(I32), c.local(I32), c.local(I32), c.local(I32)];
  const pb = Array.from({ length: 8 }, () => c.local(I32));
  const pc = c.local(I32);
  const acc = Array.from({ length: 8 }, () => c.local(V128));
  const v0 = c.local(V128), v1 = c.local(V128), s = c.local(V128);
  c.get(LDA).i32(2).i32Shl().set(ldaB);
  if (packed) c.i32(32).set(ldbB); // a strip's rows: 8 values, 32 bytes
  else c.get(LDB).i32(2).i32Shl().set(ldbB);
  c.get(LDC).i32(2).i32Shl().set(ldcB);
  /** B[0, j]: in a packed B, strip j / 8 starts j·K values in. */
  const bCol = (): void => {
    if (packed) c.get(B_).get(j).get(K_).i32Mul().i32(2).i32Shl().i32Add().set(pb[0]!);
    else c.get(B_).get(j).i32(2).i32Shl().i32Add().set(pb[0]!);
  };
  const setup = (): void => {
    c.get(C_).get(i).get(LDC).i32Mul().get(j).i32Add().i32(2).i32Shl().i32Add().set(pc);
    for (let q = 0; q < 8; q++) c.f32(0).f32x4Splat().set(acc[q]!);
    if (form === "TN") {
      c.get(A_).get(i).i32(2).i32Shl().i32Add().set(pa[0]!);
      bCol();
      return;
    }
    c.get(A_).get(i).get(LDA).i32Mul().i32(2).i32Shl().i32Add().set(pa[0]!);
    for (let r = 1; r < 4; r++) c.get(pa[r - 1]!).get(ldaB).i32Add().set(pa[r]!);
    if (form === "NN") bCol();
    else {
      c.get(B_).get(j).get(LDB).i32Mul().i32(2).i32Shl().i32Add().set(pb[0]!);
      for (let q = 1; q < 8; q++) c.get(pb[q - 1]!).get(ldbB).i32Add().set(pb[q]!);
    }
  };
  const step = (): void => {
    if (form === "TN") {
      c.get(pa[0]!).v128Load(0).set(v0);
      for (let col = 0; col < 8; col++) {
        c.get(pb[0]!).v128Load32Splat(4 * col).set(s);
        fma(acc[col]!, v0, s);
      }
      c.get(pa[0]!).get(ldaB).i32Add().set(pa[0]!);
      c.get(pb[0]!).get(ldbB).i32Add().set(pb[0]!);
      return;
    }
    if (form === "NN") {
      c.get(pb[0]!).v128Load(0).set(v0);
      c.get(pb[0]!).v128Load(16).set(v1);
      c.get(pb[0]!).get(ldbB).i32Add().set(pb[0]!);
    } else {
      for (const [v, q0] of [[v0, 0], [v1, 4]] as const) {
        c.get(pb[q0]!).v128Load32Splat(0);
        for (let l = 1; l < 4; l++) c.get(pb[q0 + l]!).f32Load().f32x4ReplaceLane(l);
        c.set(v);
      }
      for (let q = 0; q < 8; q++) c.get(pb[q]!).i32(4).i32Add().set(pb[q]!);
    }
    for (let r = 0; r < 4; r++) {
      c.get(pa[r]!).v128Load32Splat(0).set(s);
      fma(acc[2 * r]!, s, v0);
      fma(acc[2 * r + 1]!, s, v1);
      c.get(pa[r]!).i32(4).i32Add().set(pa[r]!);
    }
  };
  const store = (): void => {
    if (form === "TN") {
      for (let col = 0; col < 8; col++) {
        for (let l = 0; l < 4; l++) {
          const addr = (): void => { c.get(pc).get(ldcB).i32(l).i32Mul().i32Add(); };
          addr();
          addr();
          c.f32Load(4 * col).get(acc[col]!).f32x4ExtractLane(l).f32Add();
          c.get(acc[col]!).f32x4ExtractLane(l);
          c.get(ACC).select();
          c.f32Store(4 * col);
        }
      }
      return;
    }
    for (let r = 0; r < 4; r++) {
      for (let h = 0; h < 2; h++) {
        const q = acc[2 * r + h]!;
        c.block();
        c.get(ACC).i32Eqz().brIf(0);
        c.get(pc).get(ldcB).i32(r).i32Mul().i32Add().v128Load(16 * h).get(q).f32x4Add().set(q);
        c.end();
        c.get(pc).get(ldcB).i32(r).i32Mul().i32Add().get(q).v128Store(16 * h);
      }
    }
  };
  tileLoops(c, i, j, k, setup, step, store, 8);
  return { name: `tiles32${form}${packed ? "P" : ""}`, params: P, results: [], code: c };
}

/**
 * Products with fewer rows than a tile (a batch of one row; a layer with one input), in SIMD along the row: for
 * each row m of C and each strip of 32 bytes of it (4 float64 or 8 float32 columns, two vectors),
 * C[m, strip] (+)= Σ_k A[m, k]·B[k, strip], A's value splatted and B's 32 bytes loaded per k. B's strips come
 * from B itself (strip s at b + 32·s, row k at + k·ldb·w) or from its packing (strip s at b + 32·K·s, row k at
 * + 32·k: A·Bᵀ, whose Bᵀ columns are B's rows); A's element (m, k) is at a + m·am + k·ak (A, or Aᵀ for Aᵀ·B).
 * Each sum runs in k order from zero and C is added at the end: the naive loop's order, so bit for bit. (The
 * scalar loop these rows took before was no faster than TypeScript's, and the call cost more.)
 * `tail` > 0: one more strip after the whole ones, of which only the first `tail` columns are C's (stored lane
 * by lane); its B must be readable for the whole strip, so only a packing (padded to whole strips) is given here.
 * The same sums as the scalar edge made for these columns, in the same order: the same bits, without the edge's
 * one chain of dependent additions per column (A·Bᵀ with a batch of one: dh = dz·Rᵀ with H = 10 in float32
 * left two columns of K = 40 to the edge, which took a third of the call).
 * Parameters: M, strips, K, a, am, ak, b, bs, bk, c, ldc, acc, tail (am, ak, bs, bk and ldc in bytes).
 */
export function rows(w: 4 | 8, fused = false): FunctionDef {
  const params = [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32] as const;
  const M = 0, NS = 1, K = 2, A = 3, AM = 4, AK = 5, B = 6, BS = 7, BK = 8, C = 9, LDC = 10, ACC = 11, TAIL = 12;
  const c = new Code(params);
  const m = c.local(I32), s = c.local(I32), k = c.local(I32), pa = c.local(I32), pc = c.local(I32), ns = c.local(I32);
  const pb = [c.local(I32), c.local(I32)];
  const v = [c.local(V128), c.local(V128), c.local(V128), c.local(V128)];
  const x = c.local(V128), zero = c.local(V128), b = c.local(V128);
  const f64 = w === 8, lanes = 16 / w;
  const add = (): void => { if (f64) c.f64x2Add(); else c.f32x4Add(); };
  /** C's strips s … s + n − 1 of row m into v[0 … 2n − 1]: each sum from zero, in k order; pc set to C's place. */
  const sums = (n: number): void => {
    c.get(A).get(m).get(AM).i32Mul().i32Add().set(pa);
    c.get(B).get(s).get(BS).i32Mul().i32Add().set(pb[0]!);
    for (let q = 1; q < n; q++) c.get(pb[q - 1]!).get(BS).i32Add().set(pb[q]!);
    for (let q = 0; q < 2 * n; q++) c.get(zero).set(v[q]!);
    c.i32(0).set(k);
    c.block().loop();
    c.get(k).get(K).i32GeS().brIf(1);
    c.get(pa);
    if (f64) c.v128Load64Splat(); else c.v128Load32Splat();
    c.set(x);
    for (let q = 0; q < n; q++) {
      c.get(pb[q]!).v128Load(0).set(b);
      mulAdd(c, f64, fused, v[2 * q]!, x, b);
      c.get(pb[q]!).v128Load(16).set(b);
      mulAdd(c, f64, fused, v[2 * q + 1]!, x, b);
      c.get(pb[q]!).get(BK).i32Add().set(pb[q]!);
    }
    c.get(pa).get(AK).i32Add().set(pa);
    c.get(k).i32(1).i32Add().set(k);
    c.br(0).end().end();
    c.get(C).get(m).get(LDC).i32Mul().i32Add().get(s).i32(5).i32Shl().i32Add().set(pc); // c + m·ldc + 32·s
  };
  /**
   * v[2q], v[2q + 1] into strip s + q at pc + 32q: a whole strip in two vector stores (added to C's values when
   * ACC), the partial one lane by lane, lanes 0 … tail − 1 (C's next values are not ours to write).
   */
  const store = (q: number): void => {
    c.block();
    c.block();
    c.get(s).i32(q).i32Add().get(NS).i32GeS().brIf(0);
    c.block();
    c.get(ACC).i32Eqz().brIf(0);
    for (let h = 0; h < 2; h++) { c.get(pc).v128Load(32 * q + 16 * h).get(v[2 * q + h]!); add(); c.set(v[2 * q + h]!); }
    c.end();
    for (let h = 0; h < 2; h++) c.get(pc).get(v[2 * q + h]!).v128Store(32 * q + 16 * h);
    c.br(1);
    c.end();
    for (const acc of [false, true]) {
      c.block();
      if (acc) c.get(ACC).i32Eqz().brIf(0); else c.get(ACC).brIf(0); // each chain for its own ACC
      for (let l = 0; l < 2 * lanes; l++) {
        const at = 32 * q + l * w;
        c.get(TAIL).i32(l).i32LeS().brIf(0);
        c.get(pc);
        if (acc) { c.get(pc); if (f64) c.f64Load(at); else c.f32Load(at); }
        c.get(v[2 * q + (l < lanes ? 0 : 1)]!);
        if (f64) c.f64x2ExtractLane(l % lanes); else c.f32x4ExtractLane(l % lanes);
        if (acc) { if (f64) c.f64Add(); else c.f32Add(); }
        if (f64) c.f64Store(at); else c.f32Store(at);
      }
      c.end();
    }
    c.end();
  };
  if (f64) c.f64(0).f64x2Splat().set(zero); else c.f32(0).f32x4Splat().set(zero);
  c.get(NS).get(TAIL).i32Eqz().i32Eqz().i32Add().set(ns); // the whole strips, and the partial one if any
  c.i32(0).set(m);
  c.block().loop();
  c.get(m).get(M).i32GeS().brIf(1);
  c.i32(0).set(s);
  // Two strips at a time: four independent sums per k. One at a time, a long K left the two sums' chains of
  // dependent additions to set the pace (A·Bᵀ with a batch of one, K = 4H: dh = dz·Rᵀ), 1.6× slower at H = 32
  // (scratch probe); four at a time was slower still than one.
  c.block().loop();
  c.get(s).i32(2).i32Add().get(ns).i32GtS().brIf(1);
  sums(2);
  store(0);
  store(1);
  c.get(s).i32(2).i32Add().set(s);
  c.br(0).end().end();
  // The last strip, whole or partial, if the count is odd.
  c.block();
  c.get(s).get(ns).i32GeS().brIf(0);
  sums(1);
  store(0);
  c.end();
  c.get(m).i32(1).i32Add().set(m);
  c.br(0).end().end();
  return { name: f64 ? "rows" : "rows32", params, results: [], code: c };
}

/**
 * B packed in strips for the tiles: strip s holds columns [s·cols, s·cols + cols) of op(B) for every k, one
 * 32-byte row per k (4 float64 or 8 float32 values), strips one after the other. A tile then reads its part of
 * B as one contiguous run instead of one short piece per row of B, rows that may each sit on another page (the
 * unpacked products lose half their speed once B's rows are 4 KiB apart). Parameters: Nt (whole strips only,
 * but any count when `trans`: a partial last strip), K, b, ldb, dst (byte offsets); `trans` packs from B (N, K)
 * for A·Bᵀ, else from B (K, N). Values are copied,
 * not changed: the products stay bit-identical. (Float32 packs from B (N, K) with `packT32`.)
 */
export function pack(w: 4 | 8, trans: boolean): FunctionDef {
  const params = [I32, I32, I32, I32, I32] as const;
  const NT = 0, K = 1, B = 2, LD = 3, DST = 4, sh = w === 8 ? 3 : 2, cols = 32 / w;
  const c = new Code(params);
  const j = c.local(I32), k = c.local(I32), src = c.local(I32), dst = c.local(I32), ldB = c.local(I32);
  c.get(LD).i32(sh).i32Shl().set(ldB);
  c.i32(0).set(j);
  c.block().loop();
  c.get(j).get(NT).i32GeS().brIf(1);
  if (trans) {
    // Row j of B (N, K) is column j of Bᵀ: lane j % cols of strip j / cols, one value per k.
    c.get(B).get(j).get(ldB).i32Mul().i32Add().set(src);
    c.get(DST).get(j).i32(-cols).i32And().get(K).i32Mul().get(j).i32(cols - 1).i32And().i32Add().i32(sh).i32Shl().i32Add().set(dst);
  } else {
    // Strip j / cols: 32 bytes of B's row k per k.
    c.get(B).get(j).i32(sh).i32Shl().i32Add().set(src);
    c.get(DST).get(j).get(K).i32Mul().i32(sh).i32Shl().i32Add().set(dst);
  }
  c.i32(0).set(k);
  c.block().loop();
  c.get(k).get(K).i32GeS().brIf(1);
  if (trans) {
    c.get(dst).get(src);
    if (w === 8) c.f64Load().f64Store(); else c.f32Load().f32Store();
    c.get(src).i32(w).i32Add().set(src);
  } else {
    c.get(dst).get(src).v128Load(0).v128Store(0);
    c.get(dst).get(src).v128Load(16).v128Store(16);
    c.get(src).get(ldB).i32Add().set(src);
  }
  c.get(dst).i32(32).i32Add().set(dst);
  c.get(k).i32(1).i32Add().set(k);
  c.br(0).end().end();
  c.get(j).i32(trans ? 1 : cols).i32Add().set(j);
  c.br(0).end().end();
  return { name: `pack${w === 8 ? "" : "32"}${trans ? "T" : "N"}`, params, results: [], code: c };
}

/**
 * Four float32 vectors r[0..3] (rows) into out[0..3] (columns): out[q] lane r = r[r] lane q. Eight shuffles,
 * through t[0..3].
 */
function transpose4(c: Code, r: readonly number[], t: readonly number[], out: readonly number[]): void {
  const sh = (a: number, b: number, lanes: readonly [number, number, number, number], dst: number): void => {
    c.get(a).get(b).i32x4Shuffle(lanes).set(dst);
  };
  sh(r[0]!, r[1]!, [0, 4, 1, 5], t[0]!); // r0[0] r1[0] r0[1] r1[1]
  sh(r[0]!, r[1]!, [2, 6, 3, 7], t[1]!); // r0[2] r1[2] r0[3] r1[3]
  sh(r[2]!, r[3]!, [0, 4, 1, 5], t[2]!);
  sh(r[2]!, r[3]!, [2, 6, 3, 7], t[3]!);
  sh(t[0]!, t[2]!, [0, 1, 4, 5], out[0]!); // r0[0] r1[0] r2[0] r3[0]
  sh(t[0]!, t[2]!, [2, 3, 6, 7], out[1]!);
  sh(t[1]!, t[3]!, [0, 1, 4, 5], out[2]!);
  sh(t[1]!, t[3]!, [2, 3, 6, 7], out[3]!);
}

/**
 * The float32 form of `pack(w, true)`, in SIMD: four rows of B (N, K), four values of k at a time, transposed in registers
 * into four k rows of their strip (lanes j % 8 … j % 8 + 3); the last K mod 4 values one by one. The same
 * values in the same places as the scalar packing, which moved one value per load and store: 16k values (S2's
 * recurrent kernel) took ~10 µs, as long as half of the product that followed.
 */
export function packT32(): FunctionDef {
  const params = [I32, I32, I32, I32, I32] as const;
  const NT = 0, K = 1, B = 2, LD = 3, DST = 4;
  const c = new Code(params);
  const j = c.local(I32), k = c.local(I32), dst = c.local(I32), ldB = c.local(I32);
  const src = [c.local(I32), c.local(I32), c.local(I32), c.local(I32)];
  const r = [c.local(V128), c.local(V128), c.local(V128), c.local(V128)];
  const t = [c.local(V128), c.local(V128), c.local(V128), c.local(V128)];
  const o = [c.local(V128), c.local(V128), c.local(V128), c.local(V128)];
  c.get(LD).i32(2).i32Shl().set(ldB);
  c.i32(0).set(j);
  c.block().loop();
  c.get(j).i32(4).i32Add().get(NT).i32GtS().brIf(1);
  c.get(B).get(j).get(ldB).i32Mul().i32Add().set(src[0]!);
  for (let q = 1; q < 4; q++) c.get(src[q - 1]!).get(ldB).i32Add().set(src[q]!);
  // strip j / 8 starts (j − j % 8)·K values in; these rows are its lanes j % 8 …
  c.get(DST).get(j).i32(-8).i32And().get(K).i32Mul().get(j).i32(7).i32And().i32Add().i32(2).i32Shl().i32Add().set(dst);
  c.i32(0).set(k);
  c.block().loop();
  c.get(k).i32(4).i32Add().get(K).i32GtS().brIf(1);
  for (let q = 0; q < 4; q++) c.get(src[q]!).v128Load(0).set(r[q]!);
  transpose4(c, r, t, o);
  for (let q = 0; q < 4; q++) c.get(dst).get(o[q]!).v128Store(32 * q);
  for (let q = 0; q < 4; q++) c.get(src[q]!).i32(16).i32Add().set(src[q]!);
  c.get(dst).i32(128).i32Add().set(dst);
  c.get(k).i32(4).i32Add().set(k);
  c.br(0).end().end();
  c.block().loop(); // the last K mod 4 values of the four rows
  c.get(k).get(K).i32GeS().brIf(1);
  for (let q = 0; q < 4; q++) {
    c.get(dst).get(src[q]!).f32Load().f32Store(4 * q);
    c.get(src[q]!).i32(4).i32Add().set(src[q]!);
  }
  c.get(dst).i32(32).i32Add().set(dst);
  c.get(k).i32(1).i32Add().set(k);
  c.br(0).end().end();
  c.get(j).i32(4).i32Add().set(j);
  c.br(0).end().end();
  // The last NT mod 4 rows (a partial strip's), one value at a time.
  c.block().loop();
  c.get(j).get(NT).i32GeS().brIf(1);
  c.get(B).get(j).get(ldB).i32Mul().i32Add().set(src[0]!);
  c.get(DST).get(j).i32(-8).i32And().get(K).i32Mul().get(j).i32(7).i32And().i32Add().i32(2).i32Shl().i32Add().set(dst);
  c.i32(0).set(k);
  c.block().loop();
  c.get(k).get(K).i32GeS().brIf(1);
  c.get(dst).get(src[0]!).f32Load().f32Store();
  c.get(src[0]!).i32(4).i32Add().set(src[0]!);
  c.get(dst).i32(32).i32Add().set(dst);
  c.get(k).i32(1).i32Add().set(k);
  c.br(0).end().end();
  c.get(j).i32(1).i32Add().set(j);
  c.br(0).end().end();
  return { name: "pack32T", params, results: [], code: c };
}

/**
 * Aᵀ for Aᵀ·B: dst (M, K) with leading dimension ldd, from A (K, M) with leading dimension lda, w-byte values.
 * Parameters: M, K, a, lda, dst (byte offsets), ldd. Aᵀ·B then runs as (Aᵀ)·B in the A·B tiles: in float32 their k
 * step loads two vectors of B and splats four values of A, where the Aᵀ·B tiles splat eight values of B; in float64,
 * fused, the A·B tiles on Aᵀ ran 1.1–1.3× the Aᵀ·B tiles on the step's shapes (paired, the Zen 3 machine). In SIMD:
 * blocks of one vector's lanes square (4×4 in float32, 2×2 in float64), as many rows of A read as vectors and
 * written as rows of dst; the columns past the last whole block, then the rows past it, one value at a time.
 */
function transpose(w: 4 | 8): FunctionDef {
  const params = [I32, I32, I32, I32, I32, I32] as const;
  const M = 0, K = 1, A = 2, LD = 3, DST = 4, LDD = 5;
  const L = 16 / w, shift = w === 8 ? 3 : 2; // lanes per vector: the block's side
  const c = new Code(params);
  const i = c.local(I32), k = c.local(I32), src = c.local(I32), dst = c.local(I32), ldA = c.local(I32), ldD = c.local(I32);
  const ML = c.local(I32), KL = c.local(I32), i0 = c.local(I32), k0 = c.local(I32), iEnd = c.local(I32);
  const r = Array.from({ length: L }, () => c.local(V128));
  const t = Array.from({ length: L }, () => c.local(V128));
  const o = Array.from({ length: L }, () => c.local(V128));
  c.get(LD).i32(shift).i32Shl().set(ldA);
  c.get(LDD).i32(shift).i32Shl().set(ldD);
  c.get(M).i32(-L).i32And().set(ML);
  c.get(K).i32(-L).i32And().set(KL);
  // L×L blocks: rows k … k + L − 1 of A, columns i … i + L − 1
  c.i32(0).set(k);
  c.block().loop();
  c.get(k).get(KL).i32GeS().brIf(1);
  c.i32(0).set(i);
  c.block().loop();
  c.get(i).get(ML).i32GeS().brIf(1);
  c.get(A).get(k).get(ldA).i32Mul().i32Add().get(i).i32(shift).i32Shl().i32Add().set(src);
  for (let q = 0; q < L; q++) {
    c.get(src).v128Load(0).set(r[q]!);
    if (q < L - 1) c.get(src).get(ldA).i32Add().set(src);
  }
  if (w === 4) transpose4(c, r, t, o);
  else {
    c.get(r[0]!).get(r[1]!).i32x4Shuffle([0, 1, 4, 5]).set(o[0]!); // r0[0] r1[0]
    c.get(r[0]!).get(r[1]!).i32x4Shuffle([2, 3, 6, 7]).set(o[1]!); // r0[1] r1[1]
  }
  c.get(DST).get(i).get(ldD).i32Mul().i32Add().get(k).i32(shift).i32Shl().i32Add().set(dst);
  for (let q = 0; q < L; q++) {
    c.get(dst).get(o[q]!).v128Store(0);
    if (q < L - 1) c.get(dst).get(ldD).i32Add().set(dst);
  }
  c.get(i).i32(L).i32Add().set(i);
  c.br(0).end().end();
  c.get(k).i32(L).i32Add().set(k);
  c.br(0).end().end();
  /** One value at a time over rows [k0, K) × columns [i0, iEnd) of A. */
  const scalar = (): void => {
    c.get(k0).set(k);
    c.block().loop();
    c.get(k).get(K).i32GeS().brIf(1);
    c.get(i0).set(i);
    c.block().loop();
    c.get(i).get(iEnd).i32GeS().brIf(1);
    c.get(DST).get(i).get(ldD).i32Mul().i32Add().get(k).i32(shift).i32Shl().i32Add();
    c.get(A).get(k).get(ldA).i32Mul().i32Add().get(i).i32(shift).i32Shl().i32Add();
    if (w === 8) c.f64Load().f64Store(); else c.f32Load().f32Store();
    c.get(i).i32(1).i32Add().set(i);
    c.br(0).end().end();
    c.get(k).i32(1).i32Add().set(k);
    c.br(0).end().end();
  };
  c.i32(0).set(k0); c.get(ML).set(i0); c.get(M).set(iEnd); scalar(); // the last M mod L columns, every row
  c.get(KL).set(k0); c.i32(0).set(i0); c.get(ML).set(iEnd); scalar(); // the last K mod L rows, the other columns
  return { name: w === 8 ? "transpose" : "transpose32", params, results: [], code: c };
}

/** The module's bytes, for a memory of `pages` 64 KiB pages (shared when asked, which needs `maxPages`). */
export function gemmModule(memory: { pages: number; maxPages?: number; shared?: boolean }, fused = false): Uint8Array {
  const f = fused;
  return assemble([
    tiles("NN", false, f), tiles("TN", false, f), tiles("NT", false, f), tiles("NN", true, f), edge(8, f),
    pack(8, false), pack(8, true), transpose(8), rows(8, f),
    tiles32("NN", false, f), tiles32("TN", false, f), tiles32("NT", false, f), tiles32("NN", true, f), edge(4, f),
    pack(4, false), packT32(), transpose(4), rows(4, f),
  ], memory);
}

/**
 * Whether this runtime has WebAssembly relaxed SIMD's multiply-add, which the fused products need: Chrome 114+,
 * Node 22+; Node 20 only when started with --experimental-wasm-relaxed-simd. (Asked each time a model asks for it,
 * ~20 µs: a V8 flag set at run time changes the answer.)
 */
export function relaxedSimd(): boolean {
  const c = new Code([V128, V128, V128]);
  c.get(0).get(1).get(2).f32x4RelaxedMadd();
  try {
    return validModule(assemble([{ name: "madd", params: [V128, V128, V128], results: [V128], code: c }], { pages: 1 }));
  } catch {
    return false;
  }
}

/**
 * C (M, N) = (accumulate ? C : 0) + op(A)·op(B) over byte offsets into the module's memory (float64 or float32
 * matrices, as created): for "NN" A is
 * (M, K) and B (K, N); for "TN" A is (K, M); for "NT" B is (N, K). Leading dimensions count elements.
 * `hold`: see Hold. "TN" with M2 > 0: a second A, (K, M2) at a2, whose product fills C's next M2 rows (C is then
 * (M + M2, N)); with scratch both run as one product on the two transposed A's, which packs B once for both (an
 * LSTM's dKernel and dRecurrentKernel from one dZ), else as two. Each entry sums the same products in the same
 * order either way.
 */
export type Gemm = (
  form: Form, M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, accumulate: boolean,
  hold?: Hold, M2?: number, a2?: number, lda2?: number,
) => void;

/**
 * For a loop of products on one B (the recurrent kernel, step after step): `HOLD_NEW` packs all of B into a
 * region kept for it, `HOLD_SAME` promises that B has not changed since the last `HOLD_NEW` call with the same
 * form, B and shape, and reuses that packing (it packs afresh if anything differs). 0: pack per call.
 */
export type Hold = 0 | 1 | 2;
export const HOLD_NEW = 1, HOLD_SAME = 2;

/**
 * Instantiates the kernels on `memory` (synchronously: the module is small) and returns the product, which
 * runs the 4×4 tiles in SIMD and the edges in the scalar loop. Throws when this runtime has no WebAssembly
 * SIMD (the caller then keeps the TypeScript kernels).
 *
 * @example
 * const memory = createMemory(16);                   // the engine will own one
 * const gemm = createGemm64(memory);
 * const f = new Float64Array(memory.buffer);          // A at 0, B at 8·M·K, C after them: offsets in bytes
 * gemm("NN", M, N, K, 0, K, 8 * M * K, N, 8 * (M * K + K * N), N, false);
 */
export function createGemm64(memory: WasmMemory, shared?: { maxPages: number }, scratch?: Scratch, fused = false): Gemm {
  const ex = instantiate(memory, shared, fused);
  return wrap({ NN: ex.tilesNN!, TN: ex.tilesTN!, NT: ex.tilesNT!, NNP: ex.tilesNNP! }, ex.edge!, ex.packN!, ex.packT!, ex.transpose!, ex.rows!, 4, scratch);
}

/**
 * The float32 product, on float32 matrices in the memory (byte offsets, leading dimensions in elements): the
 * 4×8 tiles in SIMD, the edges in the scalar loop, every value rounded to float32 as it is computed.
 *
 * @example
 * const gemm = createGemm32(createMemory(16));
 * gemm("TN", M, N, K, aBytes, lda, bBytes, ldb, cBytes, ldc, true);   // C += Aᵀ·B
 */
export function createGemm32(memory: WasmMemory, shared?: { maxPages: number }, scratch?: Scratch, fused = false): Gemm {
  const ex = instantiate(memory, shared, fused);
  return wrap({ NN: ex.tiles32NN!, TN: ex.tiles32TN!, NT: ex.tiles32NT!, NNP: ex.tiles32NNP! }, ex.edge32!, ex.pack32N!, ex.pack32T!, ex.transpose32!, ex.rows32!, 8, scratch);
}

/**
 * Where the products pack: the byte offset of a region of at least `bytes` bytes in the memory, 16-byte
 * aligned, that nothing else uses: region 0 while a product runs, region 1 for a held B between products
 * (see `Hold`). Without one, the tiles read B where it is (A·Bᵀ gathering B's columns: slower).
 */
export type Scratch = (bytes: number, region: 0 | 1) => number;

/** The kernels on `memory`: a shared memory (give its maximum) is imported as shared, from one page up. */
function instantiate(memory: WasmMemory, shared?: { maxPages: number }, fused = false): Record<string, (...args: number[]) => void> {
  const limits = shared ? { pages: 1, maxPages: shared.maxPages, shared: true } : { pages: memory.buffer.byteLength / 65536 };
  const module = compiled(`gemm ${limits.pages} ${shared?.maxPages ?? ""}${fused ? " fused" : ""}`, () => gemmModule(limits, fused));
  return new WA.Instance(module, { env: { memory } }).exports as Record<string, (...args: number[]) => void>;
}

/**
 * Aᵀ·B products with a long K (the weight gradients sum over every step and row) are cut into blocks of KC
 * rows of A and B, each block's sums added into C: a tile's k loop then walks a few hundred rows of each operand,
 * which stay in cache, instead of thousands. (This changes the order of the additions, so such products agree
 * with the naive loop to rounding, not bit for bit.)
 */
export const KC_TN = 256;

/**
 * Elements added to each row of Aᵀ·B's transposed copy of A. Unpadded, a float32 block's rows are K·4 bytes apart:
 * 1 KiB for the usual K = KC_TN, so the transpose's writes down a column, and the tiles' four rows of A, all fall
 * in a few of L1's sets and evict each other. With 8 more (32 bytes) the two Aᵀ·B products of an S4 step on 32 rows
 * took 47.3 ms where they took 51.0 (interleaved, 18 rounds; 4, 12 and 20 were as good as 8).
 */
const TN_PAD = 8;

/**
 * Bytes of packed B per panel: the tiles sweep C one panel of columns at a time, so that B's part (K × n values,
 * packed in strips) stays in cache while every row of A passes over it. 128 KiB: in an interleaved comparison of
 * 64, 128 and 256 KiB over S3's and S4's products (both dtypes, nine rounds each), 128 KiB was as fast as 64 or
 * faster in ten of twelve (A·Bᵀ at S4 in float64 16.6 vs 14.2 GFLOP/s; A·B at S4 in float32 38.9 vs 34.6), and
 * 256 KiB no better overall. (This machine's L2 is 1 MiB per core.)
 */
export const PANEL_BYTES = 131072;

type Kernel = (...args: number[]) => void;

function wrap(
  kernels: Record<Form | "NNP", Kernel>, e: Kernel, packN: Kernel, packT: Kernel, tr: Kernel, rowsK: Kernel, cols: number, scratch?: Scratch,
): Gemm {
  const w = cols === 4 ? 8 : 4;
  // Packed, Aᵀ·B runs as (Aᵀ)·B (`tr`, the transposition): in float32 its own tiles splat 8 values of B per k and
  // reached 17-18 GFLOP/s, the A·B tiles on a transposed copy of A 37-45 (npm run bench -- wasmTN); in float64,
  // medians fused 15.8 against 20.5, unfused 13.5 against 15.8 (the same bench, the Zen 3 machine). Unpacked (no
  // scratch) it keeps the Aᵀ·B tiles.
  /** The whole tiles (4 rows × `cols` columns) in SIMD, the scalar loop over the rest. */
  const run = (form: Form, M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, acc: number): void => {
    const M4 = M - (M % 4), Nt = N - (N % cols);
    const ta = form === "TN" ? 1 : 0, tb = form === "NT" ? 1 : 0;
    if (M4 > 0 && Nt > 0) kernels[form](M4, Nt, K, a, lda, b, ldb, c, ldc, acc);
    if (Nt < N && M4 > 0) e(M4, N, K, a, lda, b, ldb, c, ldc, acc, 0, Nt, ta, tb);
    if (M4 < M) {
      // The last rows: the rows kernel on B where it is (not for A·Bᵀ, whose B would need packing), then the corner.
      const am = ta ? w : w * lda, ak = ta ? w * lda : w, nr = tb ? 0 : Nt;
      if (nr > 0) rowsK(M - M4, nr / cols, K, a + M4 * am, am, ak, b, 32, w * ldb, c + w * M4 * ldc, w * ldc, acc, 0);
      e(M, N, K, a, lda, b, ldb, c, ldc, acc, M4, nr, ta, tb);
    }
  };
  /**
   * Panels of columns of C: B's part packed in strips (scratch), the packed tiles over the whole tiles, the
   * scalar loop (on B as it is) over the rest. Summation order unchanged.
   */
  // The held packing: what it holds (form code, B, ldb, K, N) and where.
  let heldForm = -1, heldB = -1, heldLd = -1, heldK = -1, heldN = -1, heldAt = -1, heldFresh = true;
  /**
   * The region holding B's packing across a loop (its N − N mod cols columns, in strips), recorded as holding
   * (code, b, ldb, K, N); `heldFresh` says whether to pack it now: on HOLD_NEW, or when it held something else.
   */
  const holdB = (code: number, b: number, ldb: number, K: number, N: number, hold: Hold): number => {
    const at = scratch!(w * K * (N - (N % cols)), 1);
    heldFresh = hold === HOLD_NEW || heldForm !== code || heldB !== b || heldLd !== ldb || heldK !== K || heldN !== N || heldAt !== at;
    heldForm = code; heldB = b; heldLd = ldb; heldK = K; heldN = N; heldAt = at;
    return at;
  };
  const packed = (
    form: Form, M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, acc: number, hold: Hold,
    M2 = 0, a2 = 0, lda2 = 0,
  ): void => {
    let ta = form === "TN" ? 1 : 0;
    const tb = form === "NT" ? 1 : 0;
    const nc = Math.max(cols, Math.floor(PANEL_BYTES / (w * K * cols)) * cols);
    const panel = w * K * Math.min(nc, N - (N % cols));
    const ldt = K + TN_PAD;
    const s = scratch!(panel + (ta ? w * (M + M2) * ldt + 16 : 0), 0);
    // Held: every panel of B packed one after the other (panel j0 at w·K·j0), packed now unless already held.
    const held = hold !== 0 ? holdB(ta + 2 * tb, b, ldb, K, N, hold) : -1, fresh = held < 0 || heldFresh;
    if (ta) {
      // Aᵀ (M, K), rows ldt apart, after the panel, and a second A's below it (M2 rows); then the A·B tiles on
      // them, C's rows in the same order: each panel of B is packed once for both.
      const at = s + ((panel + 15) & ~15);
      tr(M, K, a, lda, at, ldt);
      if (M2 > 0) tr(M2, K, a2, lda2, at + w * M * ldt, ldt);
      a = at; lda = ldt; ta = 0; M += M2;
    }
    const M4 = M - (M % 4);
    for (let j0 = 0; j0 < N; j0 += nc) {
      const n = Math.min(nc, N - j0), nt = n - (n % cols);
      const bp = b + w * (tb ? j0 * ldb : j0), cp = c + w * j0;
      const dst = held >= 0 ? held + w * K * j0 : s;
      if (nt > 0 && M4 > 0) {
        if (fresh) (tb ? packT : packN)(nt, K, bp, ldb, dst);
        kernels.NNP(M4, nt, K, a, lda, dst, 0, cp, ldc, acc);
      }
      if (nt < n && M4 > 0) e(M4, n, K, a, lda, bp, ldb, cp, ldc, acc, 0, nt, ta, tb);
      if (M4 < M) {
        // The last rows: the rows kernel on the panel just packed (the tiles ran, so M4 > 0), then the corner.
        const am = ta ? w : w * lda, ak = ta ? w * lda : w, nr = M4 > 0 ? nt : 0;
        if (nr > 0) rowsK(M - M4, nr / cols, K, a + M4 * am, am, ak, dst, 32 * K, 32, cp + w * M4 * ldc, w * ldc, acc, 0);
        e(M, n, K, a, lda, bp, ldb, cp, ldc, acc, M4, nr, ta, tb);
      }
    }
  };
  /**
   * Fewer than four rows: the rows kernel over the whole strips, on B where it is (A·B, Aᵀ·B) or on Bᵀ packed
   * (A·Bᵀ: held like the tiles' packing, in the same layout, so either path reuses the other's), the scalar
   * loop over the remaining columns.
   */
  const few = (form: Form, M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, acc: number, hold: Hold): void => {
    const Nt = N - (N % cols), ta = form === "TN" ? 1 : 0, tb = form === "NT" ? 1 : 0;
    const am = ta ? w : w * lda, ak = ta ? w * lda : w;
    if (!tb) {
      rowsK(M, Nt / cols, K, a, am, ak, b, 32, w * ldb, c, w * ldc, acc, 0);
      if (Nt < N) e(M, N, K, a, lda, b, ldb, c, ldc, acc, 0, Nt, ta, tb);
    } else {
      // Bᵀ packed with its last columns too, as a partial strip, which the rows kernel runs instead of the edge.
      // (Held as form 3, not 2: the tiles' packing of the same B stops at the whole strips.)
      const Np = N + ((cols - (N % cols)) % cols);
      const dst = hold !== 0 ? holdB(3, b, ldb, K, Np, hold) : scratch!(w * K * Np, 0);
      if (hold === 0 || heldFresh) packT(N, K, b, ldb, dst);
      rowsK(M, Nt / cols, K, a, am, ak, dst, 32 * K, 32, c, w * ldc, acc, N - Nt);
    }
  };
  const one = (
    form: Form, M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, acc: number, hold: Hold,
    M2: number, a2: number, lda2: number,
  ): void => {
    if (M2 > 0) packed(form, M, N, K, a, lda, b, ldb, c, ldc, acc, hold, M2, a2, lda2); // (the caller checked that it may)
    else if (M < 4 && N >= cols && (scratch || form !== "NT")) few(form, M, N, K, a, lda, b, ldb, c, ldc, acc, hold);
    else if (scratch && N >= cols) packed(form, M, N, K, a, lda, b, ldb, c, ldc, acc, hold);
    else run(form, M, N, K, a, lda, b, ldb, c, ldc, acc);
  };
  const product: Gemm = (form, M, N, K, a, lda, b, ldb, c, ldc, accumulate, hold = 0, M2 = 0, a2 = 0, lda2 = 0) => {
    if (M2 > 0 && !(form === "TN" && scratch && N >= cols && M + M2 >= 4)) {
      // Two A's on one B run as one product only on the transposing path (packed Aᵀ·B): else one after the other.
      product(form, M, N, K, a, lda, b, ldb, c, ldc, accumulate, hold);
      product(form, M2, N, K, a2, lda2, b, ldb, c + w * M * ldc, ldc, accumulate, hold);
      return;
    }
    if (form !== "TN" || K <= KC_TN) { one(form, M, N, K, a, lda, b, ldb, c, ldc, accumulate ? 1 : 0, hold, M2, a2, lda2); return; }
    // Rows [k0, k0 + KC) of A (K, M) and B (K, N): the first block overwrites or accumulates as asked, the rest add.
    for (let k0 = 0; k0 < K; k0 += KC_TN) {
      const kb = Math.min(KC_TN, K - k0);
      one(form, M, N, kb, a + w * k0 * lda, lda, b + w * k0 * ldb, ldb, c, ldc, k0 === 0 && !accumulate ? 0 : 1, 0, M2, a2 + w * k0 * lda2, lda2);
    }
  };
  return product;
}
