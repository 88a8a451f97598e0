/**
 * The tile kernels of the SIMD products, and their scalar edge: C = (accumulate ? C : 0) + op(A)·op(B) for the
 * three forms over the whole tiles of C (`tiles` in float64, `tiles32` in float32; their packed variant reads B
 * as gemm-pack.ts's `pack` lays it out), and the scalar loop over the rows and columns the tiles leave (`edge`).
 * gemm.ts assembles them into the module and decides which runs which part of C.
 *
 * Legend: M, N, K the product's sizes, C (M, N), op(A) (M, K), op(B) (K, N), row-major; a, b, c byte offsets
 * into the memory, lda, ldb, ldc leading dimensions in elements (the parameters of every function here: P).
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
 */
import { Code, I32, V128, F32, F64, type FunctionDef } from "./assembler.js";

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
export function mulAdd(c: Code, f64: boolean, fused: boolean, acc: number, x: number, y: number): void {
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
export function tiles(form: Form, packed = false, fused = false): FunctionDef {
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
export function edge(w: 4 | 8, fused = false): FunctionDef {
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
export function tiles32(form: Form, packed = false, fused = false): FunctionDef {
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
