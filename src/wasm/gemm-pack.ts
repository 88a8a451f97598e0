/**
 * The packing of the SIMD products: B in strips for the tiles (`pack`, and `packT32` for float32's B (N, K)),
 * and A transposed for Aᵀ·B (`transpose`), into a scratch region of the memory (gemm.ts asks the arena for it).
 *
 * Legend: K the depth; a strip holds 32 bytes of op(B) per k (4 float64 or 8 float32 columns), strips one after
 * the other; b, a, dst byte offsets into the memory, ld, ldd leading dimensions in elements.
 *
 * The transpositions of A, and float32's of Bᵀ, go a block of lanes at a time through registers (`transpose`,
 * `packT32`). Packing moves values and keeps every sum as it was.
 */
import { Code, I32, V128, type FunctionDef } from "./assembler.js";

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
export function transpose(w: 4 | 8): FunctionDef {
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
