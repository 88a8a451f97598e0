/**
 * The rows kernel of the SIMD products: C (+)= op(A)·op(B) for fewer rows of C than a tile (a batch of one row;
 * the rows below the last whole tile), in SIMD along each row. gemm.ts runs it where the tiles do not, and the
 * recurrence's module (steps.ts) calls it inside its loop over the steps.
 *
 * Legend: M rows of C, each cut into strips of 32 bytes (4 float64 or 8 float32 columns), K the depth; a, b, c
 * byte offsets into the memory, and here the strides (am, ak, bs, bk, ldc) count bytes too.
 */
import { Code, I32, V128, type FunctionDef } from "./assembler.js";
import { mulAdd } from "./gemm-tiles.js";

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
