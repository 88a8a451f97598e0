/**
 * Hot kernels on raw typed arrays. No ndarray, no closures, no allocation in steady state: every matrix
 * is (array, offset, leading dimension), BLAS style, so a kernel can work on a slice of a larger buffer
 * (one timestep of a (T, B, G) buffer, say) without making a view.
 *
 * Legend: M, N, K are the matmul sizes; B batch, H units, G = 4H gate columns.
 * Every matmul has an `accumulate` flag: false overwrites C, true adds to it (backward accumulates).
 *
 * How the matmuls are fast in scalar JavaScript (V8 emits no SIMD for plain loops):
 * - Large products run through one blocked driver shared by A·B, Aᵀ·B and A·Bᵀ. A 4×3 micro-kernel keeps
 *   12 independent accumulators in registers and, per step of k, loads 4 values of op(A) and 3 of op(B)
 *   for 12 multiply-adds.
 * - It reads both operands from packed panels (MR or NR consecutive values per k), filled one K block at
 *   a time into module-level scratch that grows on demand and is then reused: no allocation in steady state.
 *   Packing is what makes Aᵀ·B and A·Bᵀ as fast as A·B (tfjs's wasm backend loses 10× on them), and it
 *   removes the cache-set conflicts of walking down a column with a power-of-two leading dimension.
 * - K is cut into blocks of KC and M into blocks of MC, so the packed A block stays in L2 and one
 *   (KC, 3) panel of B stays in L1 while the micro-kernel sweeps down the rows.
 * - Panels are zero-padded: the ragged edge runs the same micro-kernel into a 4×3 tile.
 * - Thin products (fewer than 4 rows or 3 columns: one sequence, a one-unit head) skip all of that and
 *   run strips of 8 dot products that share one operand; shallow ones (K < 4: the input projection of a
 *   series with one to three features) are a rank-K update written straight into C.
 */
import type { FloatArray } from "./tensor.js";
import * as math from "./math.js";
import * as arenas from "../wasm/arena.js";
import { type Gemm, type Hold, HOLD_NEW, HOLD_SAME, KC_TN } from "../wasm/gemm.js";

export { type Hold, HOLD_NEW, HOLD_SAME };

// ---------------------------------------------------------------------------------------------------
// Tuning (measured on a 2-core Zen server with Node 20; see bench/matmul.ts)

/** Rows of op(A) per micro-tile. */
const MR = 4;
/** Columns of op(B) per micro-tile. 4×3 (12 accumulators) measured ~5% faster than 4×4 in V8: 16
 * accumulators plus the operands no longer fit the 16 xmm registers and spill every iteration. */
const NR = 3;
/** Depth of one K block: a (KC, NR) panel of B fits L1 with room to spare. */
const KC = 256;
/** Rows of A packed at once: MC × KC doubles = 256 KB, comfortably inside L2. */
const MC = 128;

// ---------------------------------------------------------------------------------------------------
// Scratch panels, one pair per dtype (so the micro-kernel sees one array type per dtype), grown on demand
// and then reused by every call: no allocation in steady state.

let packA64 = new Float64Array(0);
let packB64 = new Float64Array(0);
let packA32 = new Float32Array(0);
let packB32 = new Float32Array(0);

function scratchA(like: FloatArray, n: number): FloatArray {
  if (like instanceof Float32Array) {
    if (packA32.length < n) packA32 = new Float32Array(n);
    return packA32;
  }
  if (packA64.length < n) packA64 = new Float64Array(n);
  return packA64;
}

function scratchB(like: FloatArray, n: number): FloatArray {
  if (like instanceof Float32Array) {
    if (packB32.length < n) packB32 = new Float32Array(n);
    return packB32;
  }
  if (packB64.length < n) packB64 = new Float64Array(n);
  return packB64;
}

/** A 4×3 tile for the partial tiles at the ragged edge, in C's dtype. */
const tile64 = new Float64Array(12);
const tile32 = new Float32Array(12);

function tileFor(like: FloatArray): FloatArray {
  return like instanceof Float32Array ? tile32 : tile64;
}

// ---------------------------------------------------------------------------------------------------
// Public matmuls

/** The shapes the SIMD products take (the tiles from four rows up, the rows kernel below that for 8 columns up). */
function simdShape(M: number, N: number): boolean {
  return N >= 4 && (M >= 4 || N >= 8);
}

/** The SIMD product on A, B and C with its offsets, for a loop of products of one shape on them (see Plan). */
export type GemmPlan = arenas.Plan<Gemm>;

/**
 * For a loop of matmuls on the same A, B and C (and the same M and N): the SIMD product and the arrays' offsets,
 * looked up once, or null (each call then dispatches itself). Pass it to every call of the loop.
 */
export function gemmPlan(M: number, N: number, A: FloatArray, B: FloatArray, C: FloatArray): GemmPlan | null {
  return arenas.anyArena && simdShape(M, N) ? arenas.plan(arenas.simdFor(A, B, C)) : null;
}

/** Picks the path by shape: a direct rank-K update for K < 4, dot-product strips for thin products, else the
 * packed, blocked driver. */
function gemm(
  transA: boolean, transB: boolean,
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number,
  B: FloatArray, bOff: number, ldb: number,
  C: FloatArray, cOff: number, ldc: number,
  accumulate: boolean,
  hold: Hold = 0,
  plan: GemmPlan | null = null,
): void {
  // The SIMD backend: when the three arrays live in one model's WebAssembly memory, its kernel runs in place:
  // the tiles from four rows up, the rows kernel below that (a batch of one) when C has 8 columns or more. A
  // plan has looked it up already.
  const simd = plan !== null ? plan.run : arenas.anyArena && simdShape(M, N) ? arenas.simdFor(A, B, C) : null;
  if (simd !== null) {
    const w = A.BYTES_PER_ELEMENT, at = plan !== null ? plan.at : arenas.at;
    simd(transA ? "TN" : transB ? "NT" : "NN", M, N, K, at[0]! + w * aOff, lda, at[1]! + w * bOff, ldb, at[2]! + w * cOff, ldc, accumulate, hold);
    return;
  }
  if (K < 4) shallow(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc, accumulate);
  else if (M < MR || N < NR) thin(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc, accumulate);
  else blocked(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc, accumulate);
}

/**
 * C (M, N) (+)= A (M, K) · B (K, N).
 *
 * @example
 * // C (2, 2) = A (2, 3) · B (3, 2), all row-major and dense
 * matmulNN(2, 2, 3, a, 0, 3, b, 0, 2, c, 0, 2, false);
 */
export function matmulNN(
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number, // (M, K)
  B: FloatArray, bOff: number, ldb: number, // (K, N)
  C: FloatArray, cOff: number, ldc: number, // (M, N)
  accumulate: boolean,
  hold: Hold = 0,                          // the SIMD backend may keep B packed across a loop's calls (see Hold)
  plan: GemmPlan | null = null,             // from gemmPlan, for a loop on the same arrays
): void {
  gemm(false, false, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc, accumulate, hold, plan);
}

/**
 * C (M, N) (+)= Aᵀ · B, with A stored (K, M) and B (K, N). Used for weight gradients:
 * dKernel = Xᵀ · dZ over all B·T rows at once.
 *
 * @example
 * // dW (I, G) += X (R, I)ᵀ · dZ (R, G) over R rows
 * matmulTN(I, G, R, x, 0, I, dz, 0, G, dw, 0, G, true);
 */
export function matmulTN(
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number, // (K, M)
  B: FloatArray, bOff: number, ldb: number, // (K, N)
  C: FloatArray, cOff: number, ldc: number, // (M, N)
  accumulate: boolean,
): void {
  gemm(true, false, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc, accumulate);
}

/**
 * Two Aᵀ·B products on one B into consecutive rows of C: C (M1 + M2, N) (+)= [A1ᵀ; A2ᵀ] · B, with A1 stored
 * (K, M1) and A2 (K, M2). An LSTM's dKernel and dRecurrentKernel (consecutive in its gradients) from one dZ: on
 * the SIMD backend one product, which packs dZ once rather than twice (see Gemm); else two matmulTN
 * calls. The same sums in the same order either way, so the same bits.
 *
 * @example
 * // dW (I + H, G) += [X (R, I)  Hs (R, H)]ᵀ · dZ (R, G) over R rows
 * matmulTN2(I, H, G, R, x, 0, I, hs, 0, H, dz, 0, G, dw, 0, G, true);
 */
export function matmulTN2(
  M1: number, M2: number, N: number, K: number,
  A1: FloatArray, a1Off: number, lda1: number, // (K, M1)
  A2: FloatArray, a2Off: number, lda2: number, // (K, M2)
  B: FloatArray, bOff: number, ldb: number,    // (K, N)
  C: FloatArray, cOff: number, ldc: number,    // (M1 + M2, N)
  accumulate: boolean,
): void {
  const simd = arenas.anyArena && simdShape(M1 + M2, N) ? arenas.simdFor(A2, B, C) : null;
  if (simd !== null) {
    // A2's, B's and C's offsets are read now: the lookup for A1 below writes `at` again (A1's offset in at[0]).
    const w = A1.BYTES_PER_ELEMENT, at = arenas.at, a2 = at[0]! + w * a2Off, b = at[1]! + w * bOff, c = at[2]! + w * cOff;
    if (arenas.simdFor(A1, B, C) === simd) {
      simd("TN", M1, N, K, at[0]! + w * a1Off, lda1, b, ldb, c, ldc, accumulate, 0, M2, a2, lda2);
      return;
    }
  }
  matmulTN(M1, N, K, A1, a1Off, lda1, B, bOff, ldb, C, cOff, ldc, accumulate);
  matmulTN(M2, N, K, A2, a2Off, lda2, B, bOff, ldb, C, cOff + M1 * ldc, ldc, accumulate);
}

/**
 * C (M, N) (+)= A · Bᵀ, with A stored (M, K) and B (N, K). Used for input gradients:
 * dh = dZ · recurrentKernelᵀ and dx = dZ · kernelᵀ.
 *
 * @example
 * // dh (B, H) = dZ (B, G) · Wr (H, G)ᵀ
 * matmulNT(B, H, G, dz, 0, G, wr, 0, G, dh, 0, H, false);
 */
export function matmulNT(
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number, // (M, K)
  B: FloatArray, bOff: number, ldb: number, // (N, K)
  C: FloatArray, cOff: number, ldc: number, // (M, N)
  accumulate: boolean,
  hold: Hold = 0,                          // the SIMD backend may keep B packed across a loop's calls (see Hold)
  plan: GemmPlan | null = null,             // from gemmPlan, for a loop on the same arrays
): void {
  gemm(false, true, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc, accumulate, hold, plan);
}

// ---------------------------------------------------------------------------------------------------
// The blocked driver

/**
 * C (M, N) (+)= op(A) · op(B) for the three forms. Both operands are packed, one K block at a time, into
 * panels (MR rows of op(A), NR columns of op(B)) laid out k-major, so the micro-kernel reads consecutive
 * values whatever the original layout: packing is what makes Aᵀ·B and A·Bᵀ cost the same as A·B, and it
 * removes the cache-set conflicts that power-of-two leading dimensions (G = 4H) cause when a kernel walks
 * down a column. Panels are zero-padded, so the ragged edge runs the same micro-kernel into a small tile.
 *
 * op(A)(i, k) is A[aOff + k·lda + i] with transA (A stored (K, M)), else A[aOff + i·lda + k];
 * op(B)(k, j) is B[bOff + j·ldb + k] with transB (B stored (N, K)), else B[bOff + k·ldb + j].
 */
function blocked(
  transA: boolean, transB: boolean,
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number,
  B: FloatArray, bOff: number, ldb: number,
  C: FloatArray, cOff: number, ldc: number,
  accumulate: boolean,
): void {
  const nPanels = Math.ceil(N / NR);
  for (let p0 = 0; p0 < K; p0 += KC) {
    const kc = K - p0 < KC ? K - p0 : KC;
    // The first K block honours `accumulate`; later ones add to what the earlier ones wrote.
    const add = accumulate || p0 > 0;
    const bp = scratchB(B, kc * NR * nPanels); // nPanels panels of (kc, NR)
    if (transB) packRows(N, NR, kc, B, bOff + p0, ldb, bp);
    else packCols(N, NR, kc, B, bOff + p0 * ldb, ldb, bp);
    for (let i0 = 0; i0 < M; i0 += MC) {
      const mc = M - i0 < MC ? M - i0 : MC;
      const ap = scratchA(A, kc * MR * Math.ceil(mc / MR)); // panels of (kc, MR)
      if (transA) packCols(mc, MR, kc, A, aOff + p0 * lda + i0, lda, ap);
      else packRows(mc, MR, kc, A, aOff + i0 * lda + p0, lda, ap);
      // j outside, i inside: one (kc, NR) panel of B is reused from L1 by every row panel of the block.
      for (let j = 0; j < N; j += NR) {
        const pb = j * kc;
        const nr = N - j < NR ? N - j : NR;
        for (let i = 0; i < mc; i += MR) {
          const mr = mc - i < MR ? mc - i : MR;
          const pc = cOff + (i0 + i) * ldc + j;
          if (mr === MR && nr === NR) micro4x3(kc, ap, i * kc, bp, pb, C, pc, ldc, add);
          else {
            const t = tileFor(C);
            micro4x3(kc, ap, i * kc, bp, pb, t, 0, NR, false);
            for (let r = 0; r < mr; r++) {
              for (let c = 0; c < nr; c++) {
                const o = pc + r * ldc + c;
                C[o] = add ? C[o]! + t[NR * r + c]! : t[NR * r + c]!;
              }
            }
          }
        }
      }
    }
  }
}

/**
 * Packs R rows of kc values, row r at src[off + r·ld …] (contiguous in k), into ceil(R/w) panels of
 * (kc, w): dst[p·w·kc + w·k + r'] = row p·w + r' at k, zero past row R. Each source row is read once,
 * left to right.
 */
function packRows(R: number, w: number, kc: number, src: FloatArray, off: number, ld: number, dst: FloatArray): void {
  let r0 = 0;
  // Full panels of the two widths in use: read w rows side by side, write the panel front to back.
  if (w === 4) {
    for (; r0 + 4 <= R; r0 += 4) {
      const s0 = off + r0 * ld, s1 = s0 + ld, s2 = s1 + ld, s3 = s2 + ld;
      for (let k = 0, d = r0 * kc; k < kc; k++, d += 4) {
        dst[d] = src[s0 + k]!; dst[d + 1] = src[s1 + k]!; dst[d + 2] = src[s2 + k]!; dst[d + 3] = src[s3 + k]!;
      }
    }
  } else if (w === 3) {
    for (; r0 + 3 <= R; r0 += 3) {
      const s0 = off + r0 * ld, s1 = s0 + ld, s2 = s1 + ld;
      for (let k = 0, d = r0 * kc; k < kc; k++, d += 3) {
        dst[d] = src[s0 + k]!; dst[d + 1] = src[s1 + k]!; dst[d + 2] = src[s2 + k]!;
      }
    }
  }
  // The rest (the last, partial panel), row by row, zero-padded.
  const rPad = Math.ceil(R / w) * w;
  for (let r = r0; r < rPad; r++) {
    const pnl = (r / w) | 0;
    let d = pnl * w * kc + (r - pnl * w);
    if (r < R) {
      const s = off + r * ld;
      for (let k = 0; k < kc; k++, d += w) dst[d] = src[s + k]!;
    } else {
      for (let k = 0; k < kc; k++, d += w) dst[d] = 0;
    }
  }
}

/**
 * Packs Q columns of kc rows, row k at src[off + k·ld …] (contiguous across columns), into ceil(Q/w)
 * panels of (kc, w): dst[p·w·kc + w·k + q'] = src[off + k·ld + p·w + q'], zero past column Q. Panel by
 * panel, so the writes are sequential (a scatter across panels would put every store w·kc apart).
 */
function packCols(Q: number, w: number, kc: number, src: FloatArray, off: number, ld: number, dst: FloatArray): void {
  let d = 0;
  for (let q0 = 0; q0 < Q; q0 += w) {
    let s = off + q0;
    // The two panel widths in use get unrolled copies: packing is a visible share of small products.
    if (Q - q0 >= w && w === 3) {
      for (let k = 0; k < kc; k++, d += 3, s += ld) {
        dst[d] = src[s]!; dst[d + 1] = src[s + 1]!; dst[d + 2] = src[s + 2]!;
      }
    } else if (Q - q0 >= w && w === 4) {
      for (let k = 0; k < kc; k++, d += 4, s += ld) {
        dst[d] = src[s]!; dst[d + 1] = src[s + 1]!; dst[d + 2] = src[s + 2]!; dst[d + 3] = src[s + 3]!;
      }
    } else {
      for (let k = 0; k < kc; k++, d += w, s += ld) {
        for (let c = 0; c < w; c++) dst[d + c] = q0 + c < Q ? src[s + c]! : 0;
      }
    }
  }
}

/**
 * The 4×3 micro-kernel over packed panels: C[0:4, 0:3] (+)= Σ_k a(·, k) b(k, ·), with a(r, k) =
 * A[pa + 4k + r] and b(k, c) = B[pb + 3k + c]. Twelve independent accumulators, so no add waits on
 * another; each k costs 7 loads for 12 multiply-adds.
 */
function micro4x3(
  K: number,
  A: FloatArray, pa: number,
  B: FloatArray, pb: number,
  C: FloatArray, pc: number, ldc: number,
  add: boolean,
): void {
  let c00 = 0, c01 = 0, c02 = 0;
  let c10 = 0, c11 = 0, c12 = 0;
  let c20 = 0, c21 = 0, c22 = 0;
  let c30 = 0, c31 = 0, c32 = 0;
  for (let k = 0; k < K; k++) {
    const b0 = B[pb]!, b1 = B[pb + 1]!, b2 = B[pb + 2]!;
    let a = A[pa]!;
    c00 += a * b0; c01 += a * b1; c02 += a * b2;
    a = A[pa + 1]!;
    c10 += a * b0; c11 += a * b1; c12 += a * b2;
    a = A[pa + 2]!;
    c20 += a * b0; c21 += a * b1; c22 += a * b2;
    a = A[pa + 3]!;
    c30 += a * b0; c31 += a * b1; c32 += a * b2;
    pa += 4;
    pb += 3;
  }
  const r0 = pc, r1 = r0 + ldc, r2 = r1 + ldc, r3 = r2 + ldc;
  if (add) {
    C[r0] = C[r0]! + c00; C[r0 + 1] = C[r0 + 1]! + c01; C[r0 + 2] = C[r0 + 2]! + c02;
    C[r1] = C[r1]! + c10; C[r1 + 1] = C[r1 + 1]! + c11; C[r1 + 2] = C[r1 + 2]! + c12;
    C[r2] = C[r2]! + c20; C[r2 + 1] = C[r2 + 1]! + c21; C[r2 + 2] = C[r2 + 2]! + c22;
    C[r3] = C[r3]! + c30; C[r3 + 1] = C[r3 + 1]! + c31; C[r3 + 2] = C[r3 + 2]! + c32;
  } else {
    C[r0] = c00; C[r0 + 1] = c01; C[r0 + 2] = c02;
    C[r1] = c10; C[r1 + 1] = c11; C[r1 + 2] = c12;
    C[r2] = c20; C[r2 + 1] = c21; C[r2 + 2] = c22;
    C[r3] = c30; C[r3 + 1] = c31; C[r3 + 2] = c32;
  }
}

// ---------------------------------------------------------------------------------------------------
// Thin products: fewer than MR = 4 rows or NR = 3 columns (one sequence, a one-unit head, one input
// feature in backward), where 4×3 tiles would be mostly padding and packing would cost more than it saves.

/**
 * C (M, N) (+)= op(A) · op(B) with M < 4 or N < 3, in strips of 8 outputs along the long side that share
 * the operand they have in common: with few rows, C(i, j … j+7) share A(i, k); with few columns,
 * C(i … i+7, j) share B(k, j). Same operand conventions as `blocked`.
 */
function thin(
  transA: boolean, transB: boolean,
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number,
  B: FloatArray, bOff: number, ldb: number,
  C: FloatArray, cOff: number, ldc: number,
  accumulate: boolean,
): void {
  // op(A)(i, k) at aOff + i·ars + k·aks; op(B)(k, j) at bOff + k·bks + j·bjs.
  const ars = transA ? 1 : lda, aks = transA ? lda : 1;
  const bks = transB ? 1 : ldb, bjs = transB ? ldb : 1;
  if (M <= N) {
    for (let i = 0; i < M; i++) {
      const ai = aOff + i * ars, ci = cOff + i * ldc;
      let j = 0;
      if (bjs === 1) for (; j + 8 <= N; j += 8) strip8c(K, B, bOff + j, bks, A, ai, aks, C, ci + j, accumulate);
      else for (; j + 8 <= N; j += 8) strip8(K, B, bOff + j * bjs, bjs, bks, A, ai, aks, C, ci + j, 1, accumulate);
      for (; j < N; j++) strip1(K, B, bOff + j * bjs, bks, A, ai, aks, C, ci + j, accumulate);
    }
  } else {
    for (let j = 0; j < N; j++) {
      const bj = bOff + j * bjs;
      let i = 0;
      for (; i + 8 <= M; i += 8) strip8(K, A, aOff + i * ars, ars, aks, B, bj, bks, C, cOff + i * ldc + j, ldc, accumulate);
      for (; i < M; i++) strip1(K, A, aOff + i * ars, aks, B, bj, bks, C, cOff + i * ldc + j, accumulate);
    }
  }
}

/**
 * Eight dot products sharing one vector: C[c0 + r·cs] (+)= Σ_k X[x0 + r·xs + k·xk] · Y[y0 + k·yk] for
 * r = 0 … 7. Eight independent accumulators; 9 loads per 8 multiply-adds.
 */
function strip8(
  K: number,
  X: FloatArray, x0: number, xs: number, xk: number,
  Y: FloatArray, y0: number, yk: number,
  C: FloatArray, c0: number, cs: number,
  accumulate: boolean,
): void {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  const o1 = xs, o2 = 2 * xs, o3 = 3 * xs, o4 = 4 * xs, o5 = 5 * xs, o6 = 6 * xs, o7 = 7 * xs;
  let p = x0, q = y0;
  for (let k = 0; k < K; k++) {
    const y = Y[q]!;
    s0 += X[p]! * y; s1 += X[p + o1]! * y; s2 += X[p + o2]! * y; s3 += X[p + o3]! * y;
    s4 += X[p + o4]! * y; s5 += X[p + o5]! * y; s6 += X[p + o6]! * y; s7 += X[p + o7]! * y;
    p += xk;
    q += yk;
  }
  if (accumulate) {
    C[c0] = C[c0]! + s0; C[c0 + cs] = C[c0 + cs]! + s1; C[c0 + 2 * cs] = C[c0 + 2 * cs]! + s2; C[c0 + 3 * cs] = C[c0 + 3 * cs]! + s3;
    C[c0 + 4 * cs] = C[c0 + 4 * cs]! + s4; C[c0 + 5 * cs] = C[c0 + 5 * cs]! + s5; C[c0 + 6 * cs] = C[c0 + 6 * cs]! + s6; C[c0 + 7 * cs] = C[c0 + 7 * cs]! + s7;
  } else {
    C[c0] = s0; C[c0 + cs] = s1; C[c0 + 2 * cs] = s2; C[c0 + 3 * cs] = s3;
    C[c0 + 4 * cs] = s4; C[c0 + 5 * cs] = s5; C[c0 + 6 * cs] = s6; C[c0 + 7 * cs] = s7;
  }
}

/**
 * `strip8` for eight consecutive values of X (xs = 1) written to eight consecutive entries of C: the
 * few-rows case of A·B and Aᵀ·B, where the offsets fold into the loads.
 */
function strip8c(
  K: number,
  X: FloatArray, x0: number, xk: number,
  Y: FloatArray, y0: number, yk: number,
  C: FloatArray, c0: number,
  accumulate: boolean,
): void {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  let p = x0, q = y0;
  for (let k = 0; k < K; k++) {
    const y = Y[q]!;
    s0 += X[p]! * y; s1 += X[p + 1]! * y; s2 += X[p + 2]! * y; s3 += X[p + 3]! * y;
    s4 += X[p + 4]! * y; s5 += X[p + 5]! * y; s6 += X[p + 6]! * y; s7 += X[p + 7]! * y;
    p += xk;
    q += yk;
  }
  if (accumulate) {
    C[c0] = C[c0]! + s0; C[c0 + 1] = C[c0 + 1]! + s1; C[c0 + 2] = C[c0 + 2]! + s2; C[c0 + 3] = C[c0 + 3]! + s3;
    C[c0 + 4] = C[c0 + 4]! + s4; C[c0 + 5] = C[c0 + 5]! + s5; C[c0 + 6] = C[c0 + 6]! + s6; C[c0 + 7] = C[c0 + 7]! + s7;
  } else {
    C[c0] = s0; C[c0 + 1] = s1; C[c0 + 2] = s2; C[c0 + 3] = s3;
    C[c0 + 4] = s4; C[c0 + 5] = s5; C[c0 + 6] = s6; C[c0 + 7] = s7;
  }
}

/** One dot product, C[c0] (+)= Σ_k X[x0 + k·xk] · Y[y0 + k·yk], with two accumulators. */
function strip1(
  K: number,
  X: FloatArray, x0: number, xk: number,
  Y: FloatArray, y0: number, yk: number,
  C: FloatArray, c0: number,
  accumulate: boolean,
): void {
  let s0 = 0, s1 = 0;
  let p = x0, q = y0, k = 0;
  for (; k + 1 < K; k += 2) {
    s0 += X[p]! * Y[q]!;
    s1 += X[p + xk]! * Y[q + yk]!;
    p += 2 * xk;
    q += 2 * yk;
  }
  if (k < K) s0 += X[p]! * Y[q]!;
  C[c0] = accumulate ? C[c0]! + (s0 + s1) : s0 + s1;
}

// ---------------------------------------------------------------------------------------------------
// Shallow products: K < 4 (one to three input features: the input projection of a univariate series).

/**
 * C (M, N) (+)= op(A) · op(B) with K ≤ 3, as a rank-K update written straight into C: each entry is
 * one to three multiply-adds, so anything beyond a single pass over C (packing, tiles) would dominate.
 * Same operand conventions as `blocked`.
 */
function shallow(
  transA: boolean, transB: boolean,
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number,
  B: FloatArray, bOff: number, ldb: number,
  C: FloatArray, cOff: number, ldc: number,
  accumulate: boolean,
): void {
  const ars = transA ? 1 : lda, aks = transA ? lda : 1;
  const bks = transB ? 1 : ldb, bjs = transB ? ldb : 1;
  const b1 = bOff + bks, b2 = b1 + bks; // rows k = 1, 2 of op(B)
  for (let i = 0; i < M; i++) {
    const ai = aOff + i * ars, ci = cOff + i * ldc;
    // One loop per depth, so the j loop carries no branch; op(B)(k, j) at b_k + j·bjs.
    if (K === 0) {
      if (!accumulate) for (let j = 0; j < N; j++) C[ci + j] = 0;
    } else if (K === 1) {
      const a0 = A[ai]!;
      if (accumulate) for (let j = 0, p = bOff; j < N; j++, p += bjs) C[ci + j] = C[ci + j]! + a0 * B[p]!;
      else for (let j = 0, p = bOff; j < N; j++, p += bjs) C[ci + j] = a0 * B[p]!;
    } else if (K === 2) {
      const a0 = A[ai]!, a1 = A[ai + aks]!;
      for (let j = 0, p = 0; j < N; j++, p += bjs) {
        const v = a0 * B[bOff + p]! + a1 * B[b1 + p]!;
        C[ci + j] = accumulate ? C[ci + j]! + v : v;
      }
    } else {
      const a0 = A[ai]!, a1 = A[ai + aks]!, a2 = A[ai + 2 * aks]!;
      for (let j = 0, p = 0; j < N; j++, p += bjs) {
        const v = a0 * B[bOff + p]! + a1 * B[b1 + p]! + a2 * B[b2 + p]!;
        C[ci + j] = accumulate ? C[ci + j]! + v : v;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Bias, bias gradient and the fused LSTM gate math

/** Y (M, N) += bias (N) on every row. */
export function addBiasRows(
  M: number, N: number,
  Y: FloatArray, yOff: number, ldy: number, // (M, N)
  bias: FloatArray, bOff: number,           // (N)
): void {
  // The SIMD backend: the same additions two (float64) or four (float32) columns at a time (src/wasm/gates.ts), bit for bit.
  if (arenas.anyArena && (N & 1) === 0 && M > 0) {
    const simd = arenas.biasFor(Y, bias, false), w = Y.BYTES_PER_ELEMENT;
    if (simd) { simd(M, N, arenas.at[0]! + w * yOff, ldy, arenas.at[1]! + w * bOff); return; }
  }
  addBiasLoop(M, N, Y, yOff, ldy, bias, bOff);
}

/** addBiasRows' TypeScript loop, in a function of its own for the reason gatesForwardLoop gives. */
function addBiasLoop(M: number, N: number, Y: FloatArray, yOff: number, ldy: number, bias: FloatArray, bOff: number): void {
  let i = 0;
  // Four rows per pass: each bias value is loaded once for four updates.
  for (; i + 3 < M; i += 4) {
    const y0 = yOff + i * ldy, y1 = y0 + ldy, y2 = y1 + ldy, y3 = y2 + ldy;
    for (let j = 0; j < N; j++) {
      const v = bias[bOff + j]!;
      Y[y0 + j] = Y[y0 + j]! + v;
      Y[y1 + j] = Y[y1 + j]! + v;
      Y[y2 + j] = Y[y2 + j]! + v;
      Y[y3 + j] = Y[y3 + j]! + v;
    }
  }
  for (; i < M; i++) {
    const yi = yOff + i * ldy;
    for (let j = 0; j < N; j++) Y[yi + j] = Y[yi + j]! + bias[bOff + j]!;
  }
}

/** dBias (N) += column sums of dY (M, N): the bias gradient. */
export function sumRowsInto(
  M: number, N: number,
  dY: FloatArray, yOff: number, ldy: number, // (M, N)
  dBias: FloatArray, bOff: number,           // (N)
): void {
  // The SIMD backend: the same sums in the same order, two columns at a time in float64 (bit for bit), four in
  // float32 arithmetic (rounding at each addition, where this loop rounds at the store) (src/wasm/gates.ts).
  if (arenas.anyArena && (N & 1) === 0 && M > 0) {
    const simd = arenas.biasFor(dY, dBias, true), w = dY.BYTES_PER_ELEMENT;
    if (simd) { simd(M, N, arenas.at[0]! + w * yOff, ldy, arenas.at[1]! + w * bOff); return; }
  }
  sumRowsLoop(M, N, dY, yOff, ldy, dBias, bOff);
}

/** sumRowsInto's TypeScript loop, in a function of its own for the reason gatesForwardLoop gives. */
function sumRowsLoop(M: number, N: number, dY: FloatArray, yOff: number, ldy: number, dBias: FloatArray, bOff: number): void {
  let i = 0;
  // Four rows per pass: dBias is read and written once per four rows.
  for (; i + 3 < M; i += 4) {
    const y0 = yOff + i * ldy, y1 = y0 + ldy, y2 = y1 + ldy, y3 = y2 + ldy;
    for (let j = 0; j < N; j++) {
      dBias[bOff + j] = dBias[bOff + j]! + ((dY[y0 + j]! + dY[y1 + j]!) + (dY[y2 + j]! + dY[y3 + j]!));
    }
  }
  for (; i < M; i++) {
    const yi = yOff + i * ldy;
    for (let j = 0; j < N; j++) dBias[bOff + j] = dBias[bOff + j]! + dY[yi + j]!;
  }
}

// ---------------------------------------------------------------------------------------------------
// exp, sigmoid and tanh for the gates. V8's Math.exp costs ~9 ns and Math.tanh ~15 ns (calls into C);
// with three sigmoids and two tanh per unit they were most of a small model's step. These inline into
// the gate loop and are within 3 ulp of the correctly rounded values (test/kernels.test.ts measures against mpmath).
//
// Both use the table method of tensor/math.ts (whose tables they read): x = (64m + j)·ln2/64 + r with
// |r| ≤ ln2/128, so exp(x) = 2^m · 2^(j/64) · exp(r), and exp(r) - 1 is a degree-6 polynomial whose
// truncation error is below 2^-55 on that interval. They use arithmetic only, so every engine computes
// the same bits (see math.ts for why that matters).
//
// The tables and constants are copied into this module's own consts once: the hot loops then read a
// local binding, never an imported one (which the CommonJS build turns into a getter call).
const EXP2_FRAC = math.EXP2_FRAC, POW2 = math.POW2, EXPM1_TABLE = math.EXPM1_TABLE;
const POW2_BIAS = math.POW2_BIAS, EXPM1_RANGE = math.EXPM1_RANGE, INV_LN2_64 = math.INV_LN2_64;
const LN2_64_HI = math.LN2_64_HI, LN2_64_LO = math.LN2_64_LO, ROUND_SHIFT = math.ROUND_SHIFT;
const EXP = math.exp;

/**
 * σ(x) = 1 / (1 + exp(-x)), and exp(x) below -708: there e^x / (1 + e^x) is e^x to double precision, and
 * exp(x) stays right into the subnormal tail, where exp(-x) would overflow and give 0 long before σ is 0.
 * Within 3 ulp of the correctly rounded σ over the whole double range (test/kernels.test.ts, against mpmath).
 * It repeats the body of math.ts's exp rather than calling it: V8 then inlines the whole thing into the gate
 * loop (a call that is not inlined also boxes its double result on the heap); the tail's call is cold.
 */
export function fastSigmoid(x: number): number {
  if (x < -708) return EXP(x);
  const v = x > 745.2 ? 745.2 : x; // past 745.2 exp(-v) is 0 and σ is 1; the clamp keeps the table index in range
  const nf = (-v * INV_LN2_64 + ROUND_SHIFT) - ROUND_SHIFT;
  const n = nf | 0;
  const r = (-v - nf * LN2_64_HI) - nf * LN2_64_LO;
  const q = r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720))))));
  const t = EXP2_FRAC[n & 63]!;
  return 1 / (1 + POW2[(n >> 6) + POW2_BIAS]! * (t + t * q));
}

/**
 * tanh(x) = -expm1(-2x) / (expm1(-2x) + 2), which keeps full relative precision near 0 (1 - 2/(e^2x + 1)
 * does not); past |x| = 22 tanh is ±1 in double precision, so x is clamped there. Within 3 ulp of the correctly rounded tanh (against mpmath).
 */
export function fastTanh(x: number): number {
  const y = -2 * (x > 22 ? 22 : x < -22 ? -22 : x);
  const nf = (y * INV_LN2_64 + ROUND_SHIFT) - ROUND_SHIFT;
  const n = nf | 0;
  const r = (y - nf * LN2_64_HI) - nf * LN2_64_LO;
  const q = r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720))))));
  let em1: number; // expm1(y) = 2^(n/64)·(1 + q) - 1
  if (n >= -EXPM1_RANGE && n <= EXPM1_RANGE) {
    const tm = EXPM1_TABLE[n + EXPM1_RANGE]!;
    em1 = tm + (q + tm * q);
  } else {
    const t = EXP2_FRAC[n & 63]!;
    em1 = POW2[(n >> 6) + POW2_BIAS]! * (t + t * q) - 1;
  }
  return -em1 / (em1 + 2);
}

/** The SIMD gate kernels with their arrays' offsets, for a loop over the steps (see Plan in wasm/arena.ts). */
export type GatesPlan = arenas.Plan<arenas.Gates>;
export type GatesBackPlan = arenas.Plan<arenas.GatesBack>;

/** For a loop of lstmGatesForward calls on the same arrays: the SIMD kernel and offsets, looked up once, or null. */
export function gatesPlan(H: number, hard: boolean, z: FloatArray, cPrev: FloatArray, c: FloatArray, tanhC: FloatArray, h: FloatArray): GatesPlan | null {
  return arenas.anyArena && !hard && (H & 1) === 0 ? arenas.plan(arenas.gatesFor(z, cPrev, c, tanhC, h)) : null;
}

/** For a loop of lstmGatesBackward calls on the same arrays: the SIMD kernel and offsets, looked up once, or null. */
export function gatesBackPlan(H: number, gates: FloatArray, cPrev: FloatArray, tanhC: FloatArray, dh: FloatArray, dc: FloatArray, dz: FloatArray): GatesBackPlan | null {
  return arenas.anyArena && (H & 1) === 0 ? arenas.plan(arenas.gatesBackFor(gates, cPrev, tanhC, dh, dc, dz)) : null;
}

/**
 * One LSTM step's gate math, fused, for B rows of H units (Keras gate order i, f, c, o):
 * z (pre-activations, overwritten in place with the activations i, f, g, o), then
 * c = f ⊙ cPrev + i ⊙ g, tanhC = tanh(c), h = o ⊙ tanhC.
 * The activations are kept because backward takes every derivative from the saved outputs
 * (σ' = σ(1-σ), tanh' = 1-tanh²), so no exp is recomputed.
 */
export function lstmGatesForward(
  B: number, H: number,
  z: FloatArray, zOff: number,          // (B, 4H), in: pre-activation, out: activations
  cPrev: FloatArray, cPrevOff: number,  // (B, H)
  c: FloatArray, cOff: number,          // (B, H) out
  tanhC: FloatArray, tOff: number,      // (B, H) out
  h: FloatArray, hOff: number,          // (B, H) out
  hard: boolean,                        // the gates' σ is hardSigmoid, clip(0.2·x + 0.5, 0, 1)
  plan: GatesPlan | null = null,         // from gatesPlan, for a loop on the same arrays
): void {
  // The SIMD backend, when the arrays live in a model's WebAssembly memory (src/wasm/gates.ts): in float64 the same
  // arithmetic two units at a time, bit for bit, declining (1) a step with a σ input below -708, which runs here;
  // in float32, float32 arithmetic four units at a time, within a few float32 ulps of this. A plan has looked it up.
  const simd = plan !== null ? plan.run : arenas.anyArena && !hard && (H & 1) === 0 ? arenas.gatesFor(z, cPrev, c, tanhC, h) : null;
  if (simd !== null) {
    const w = z.BYTES_PER_ELEMENT, at = plan !== null ? plan.at : arenas.at;
    if (simd(B, H, at[0]! + w * zOff, at[1]! + w * cPrevOff, at[2]! + w * cOff, at[3]! + w * tOff, at[4]! + w * hOff) === 0) return;
  }
  gatesForwardLoop(B, H, z, zOff, cPrev, cPrevOff, c, cOff, tanhC, tOff, h, hOff, hard);
}

/**
 * lstmGatesForward's TypeScript loop, in a function of its own: a model on the SIMD backend passes its arrays
 * through lstmGatesForward without running this, so a process that has both (a float32 SIMD model, a float64
 * TypeScript one) keeps this loop seeing one array type, with fastSigmoid and fastTanh inlined. (In one function,
 * V8 compiled the loop for both types, called fastTanh, and boxed each result: ~0.4 MB of garbage per S1 step.)
 */
function gatesForwardLoop(
  B: number, H: number, z: FloatArray, zOff: number, cPrev: FloatArray, cPrevOff: number, c: FloatArray, cOff: number,
  tanhC: FloatArray, tOff: number, h: FloatArray, hOff: number, hard: boolean,
): void {
  const G = 4 * H, H2 = 2 * H, H3 = 3 * H;
  for (let b = 0; b < B; b++) {
    const zb = zOff + b * G;
    // Activations in place: σ on i, f (columns [0, 2H)) and o ([3H, 4H)), tanh on g ([2H, 3H)).
    // One call site per function: V8 inlines a limited amount of code into one function, and three
    // σ sites plus two tanh sites would leave one as a real call (with a boxed result) per unit.
    if (hard) {
      for (let k = 0; k < H3; k++) {
        const q = zb + (k < H2 ? k : k + H);
        const v = 0.2 * z[q]! + 0.5;
        z[q] = v < 0 ? 0 : v > 1 ? 1 : v;
      }
    } else {
      for (let k = 0; k < H3; k++) {
        const q = zb + (k < H2 ? k : k + H);
        z[q] = fastSigmoid(z[q]!);
      }
    }
    for (let q = zb + H2; q < zb + H3; q++) z[q] = fastTanh(z[q]!);
    const sb = b * H;
    for (let j = 0; j < H; j++) {
      const zi = zb + j;
      const cv = z[zi + H]! * cPrev[cPrevOff + sb + j]! + z[zi]! * z[zi + H2]!; // f ⊙ c_{t-1} + i ⊙ g
      c[cOff + sb + j] = cv;
      const tc = fastTanh(cv);
      tanhC[tOff + sb + j] = tc;
      h[hOff + sb + j] = z[zi + H3]! * tc;
    }
  }
}

/**
 * x.fill(0), in SIMD when x lives in a model's WebAssembly memory: there TypedArray.fill is ~5× slower than on
 * an ordinary array (0.4 against 0.07 µs for the seed model's 491 gradients), and a step zeroes its gradients.
 */
export function clear(x: FloatArray): void {
  const k = arenas.anyArena ? arenas.zeroFor(x) : null;
  if (k) k(x.length * x.BYTES_PER_ELEMENT, arenas.at[0]!);
  else x.fill(0);
}

/**
 * Products of at most this many multiply-adds run inside lstmRecurrence's call (the input projection) and
 * lstmRecurrenceBackward's (the weight gradients), in the rows kernel; larger ones run as before, in the tiles,
 * where they are several times faster, and their dispatch from TypeScript costs little beside them. At S0's shape
 * (11·40·10 = 4,400) the dispatch cost more than the product (matmulTN2 took ~1.0 µs from TypeScript, ~0.6 in
 * the rows kernel inside the call); with B = 1, T = 50, I = 32, H = 64 (1.2 million) the rows kernel made the step
 * 1.2× slower, and at I = 128, H = 256 1.55× (scratch probes).
 */
export const SMALL_PRODUCT = 16384;

/**
 * An LSTM layer's forward over steps [t0, t1) in one SIMD call, for a batch of fewer than four rows: per step
 * z_t += h_{t−1}·R and lstmGatesForward, as lstmForward's loop calls them, the same kernels on the same arguments,
 * so the same bits (src/wasm/steps.ts); with `project`, first the input projection z = x·W + bias of every step,
 * as lstmForward's product and bias rows compute it (the caller asks for it when small: SMALL_PRODUCT). x (·, I):
 * the steps' input rows from xOff (step t0's first); W (I, 4H); R (H, 4H); hs, cs (·, B, H) by slot, step t reading
 * slot t and writing slot t + 1; gates (·, B, 4H), holding the projection when not `project`, and tanhC (·, B, H)
 * by step. Returns false, having done nothing, when it does not apply (not the SIMD backend, B ≥ 4, H odd, an array
 * elsewhere): the caller runs its own. A float64 step the SIMD gate kernel declines (a σ input below −708) runs its
 * gates in TypeScript.
 */
export function lstmRecurrence(
  B: number, H: number, I: number, x: FloatArray, xOff: number, W: FloatArray, bias: FloatArray | null,
  hs: FloatArray, cs: FloatArray, gates: FloatArray, tanhC: FloatArray, R: FloatArray, t0: number, t1: number, project: boolean,
): boolean {
  const steps = arenas.anyArena && B < 4 && (H & 1) === 0 ? arenas.stepsFor(hs, cs, gates, tanhC, R, x, W, bias) : null;
  if (steps === null) return false;
  const w = hs.BYTES_PER_ELEMENT, at = arenas.at, BH = B * H, BG = 4 * BH;
  const h0 = at[0]!, c0 = at[1]!, z0 = at[2]!, tc0 = at[3]!, r0 = at[4]!, xAt = at[5]! + w * xOff, wAt = at[6]!, bAt = at[7]!;
  // Each call runs from step t and stops before a declined step t' (its product added): t' runs its gates here,
  // and the loop's t++ resumes after it. Only the first call projects the inputs (of every step).
  for (let t = t0; t < t1; t++) {
    const first = project && t === t0 ? 1 : 0;
    t += steps.forward(t1 - t, B, H, h0 + w * t * BH, c0 + w * t * BH, z0 + w * t * BG, tc0 + w * t * BH, r0, I, xAt, wAt, bAt, first);
    if (t < t1) gatesForwardLoop(B, H, gates, t * BG, cs, t * BH, cs, (t + 1) * BH, tanhC, t * BH, hs, (t + 1) * BH, false);
  }
  return true;
}

/**
 * The backward of lstmRecurrence over steps [tb, t1) in one call: per step, t1 − 1 first, dh += dL/dh_t from the
 * layer above (dhSeq, for the steps t ≥ dhSeqFrom, (·, B, H) from dhSeqOff), lstmGatesBackward, then dh = dz_t·Rᵀ;
 * then, when the product is small (SMALL_PRODUCT), the weight gradients dW (I + H, 4H) += [xᵀ; h_{t−1}ᵀ]·dz and
 * dBias += dz's column sums over the n·B rows, as lstmBackward's matmulTN2 and sumRowsInto sum them: the same
 * bits. dh, dc (B, H): in, the gradients reaching the last step's h and c; out, those reaching h_{tb−1} and
 * c_{tb−1}. dz (·, B, 4H) by step; x (·, I) from xOff (step tb's first row); hs by slot (slot tb is h_{tb−1}).
 * Returns 0, having done nothing, when it does not apply (as lstmRecurrence, or H < 8); 1 when it ran the loop
 * (the caller then computes the weight gradients); 2 when it computed them too.
 */
export function lstmRecurrenceBackward(
  B: number, H: number, I: number, cs: FloatArray, gates: FloatArray, tanhC: FloatArray, dh: FloatArray, dc: FloatArray, dz: FloatArray,
  R: FloatArray, tb: number, t1: number, dhSeq: FloatArray | null, dhSeqOff: number, dhSeqFrom: number,
  x: FloatArray, xOff: number, hs: FloatArray, dW: FloatArray, dBias: FloatArray | null,
): 0 | 1 | 2 {
  // (H ≥ 8: below that, dh = dz·Rᵀ ran in TypeScript's kernels, whose sums may round differently; it stays there.)
  const steps = arenas.anyArena && B < 4 && H >= 8 && (H & 1) === 0
    ? arenas.stepsBackFor(cs, gates, tanhC, dh, dc, dz, R, dhSeq, x, hs, dW, dBias) : null;
  if (steps === null) return 0;
  const w = cs.BYTES_PER_ELEMENT, at = arenas.at, BH = B * H, BG = 4 * BH, t = t1 - 1;
  // the top steps that have a gradient from above: t ≥ dhSeqFrom, from t1 − 1 down
  const nSeq = dhSeq === null ? 0 : Math.max(0, t1 - Math.max(dhSeqFrom, tb));
  const ds = nSeq > 0 ? at[7]! + w * (dhSeqOff + (t - dhSeqFrom) * BH) : 0;
  // (at most KC_TN rows: one block of matmulTN2's sum, always so below SMALL_PRODUCT)
  const weights = (I + H) * BG * (t1 - tb) <= SMALL_PRODUCT && (t1 - tb) * B <= KC_TN ? 1 : 0;
  steps.backward(
    t1 - tb, B, H, at[0]! + w * t * BH, at[1]! + w * t * BG, at[2]! + w * t * BH, at[3]!, at[4]!, at[5]! + w * t * BG, at[6]!, ds, nSeq,
    I, at[8]! + w * xOff, at[9]! + w * tb * BH, at[10]!, at[11]!, weights,
  );
  return weights ? 2 : 1;
}

/**
 * The backward of `lstmGatesForward` for one step. Takes dh (the full gradient reaching h_t) and
 * dc (the gradient reaching c_t from step t+1), writes dz (B, 4H) and replaces dc by the gradient
 * reaching c_{t-1}, which is dc ⊙ f. For σ gates; `lstmGatesBackwardHard` is the same for hardSigmoid gates.
 */
export function lstmGatesBackward(
  B: number, H: number,
  gates: FloatArray, gOff: number,      // (B, 4H) activations i, f, g, o saved by forward
  cPrev: FloatArray, cPrevOff: number,  // (B, H) c_{t-1}
  tanhC: FloatArray, tOff: number,      // (B, H) tanh(c_t)
  dh: FloatArray, dhOff: number,        // (B, H) dL/dh_t
  dc: FloatArray, dcOff: number,        // (B, H) in: dL/dc_t from later steps, out: dL/dc_{t-1}
  dz: FloatArray, dzOff: number,        // (B, 4H) out: dL/dz_t
  plan: GatesBackPlan | null = null,     // from gatesBackPlan, for a loop on the same arrays
): void {
  // The SIMD backend (src/wasm/gates.ts): the same arithmetic two units at a time in float64, bit for bit; four in
  // float32 arithmetic (rounding at each operation, where this loop rounds at the stores). A plan has looked it up.
  const simd = plan !== null ? plan.run : arenas.anyArena && (H & 1) === 0 ? arenas.gatesBackFor(gates, cPrev, tanhC, dh, dc, dz) : null;
  if (simd !== null) {
    const w = gates.BYTES_PER_ELEMENT, at = plan !== null ? plan.at : arenas.at;
    simd(B, H, at[0]! + w * gOff, at[1]! + w * cPrevOff, at[2]! + w * tOff, at[3]! + w * dhOff, at[4]! + w * dcOff, at[5]! + w * dzOff);
    return;
  }
  gatesBackwardLoop(B, H, gates, gOff, cPrev, cPrevOff, tanhC, tOff, dh, dhOff, dc, dcOff, dz, dzOff);
}

/** lstmGatesBackward's TypeScript loop, in a function of its own for the reason gatesForwardLoop gives. */
function gatesBackwardLoop(
  B: number, H: number, gates: FloatArray, gOff: number, cPrev: FloatArray, cPrevOff: number, tanhC: FloatArray, tOff: number,
  dh: FloatArray, dhOff: number, dc: FloatArray, dcOff: number, dz: FloatArray, dzOff: number,
): void {
  const G = 4 * H;
  for (let b = 0; b < B; b++) {
    const gb = gOff + b * G, db = dzOff + b * G, sb = b * H;
    for (let j = 0; j < H; j++) {
      const ig = gates[gb + j]!, fg = gates[gb + H + j]!, gg = gates[gb + 2 * H + j]!, og = gates[gb + 3 * H + j]!;
      const tc = tanhC[tOff + sb + j]!;
      const dhv = dh[dhOff + sb + j]!;
      // c_t reaches the loss through h_t = o ⊙ tanh(c_t) and through c_{t+1} = f ⊙ c_t + …;
      // σ' comes from the saved output: σ(1-σ).
      const dcv = dc[dcOff + sb + j]! + dhv * og * (1 - tc * tc);
      dz[db + j] = dcv * gg * ig * (1 - ig);
      dz[db + H + j] = dcv * cPrev[cPrevOff + sb + j]! * fg * (1 - fg);
      dz[db + 2 * H + j] = dcv * ig * (1 - gg * gg);
      dz[db + 3 * H + j] = dhv * tc * og * (1 - og);
      dc[dcOff + sb + j] = dcv * fg;
    }
  }
}

/**
 * `lstmGatesBackward` for hardSigmoid gates, whose derivative is 0.2 on the ramp and 0 where it clips (at the
 * corners too, as PyTorch's hardsigmoid). A separate function rather than a flag: a flag tested per element
 * measured 1.5× slower on the σ path, and one tested outside two copies of the loop still 1.2× (the larger
 * function compiles worse); this way the σ kernel is exactly what it was.
 */
export function lstmGatesBackwardHard(
  B: number, H: number,
  gates: FloatArray, gOff: number,      // (B, 4H) activations i, f, g, o saved by forward
  cPrev: FloatArray, cPrevOff: number,  // (B, H) c_{t-1}
  tanhC: FloatArray, tOff: number,      // (B, H) tanh(c_t)
  dh: FloatArray, dhOff: number,        // (B, H) dL/dh_t
  dc: FloatArray, dcOff: number,        // (B, H) in: dL/dc_t from later steps, out: dL/dc_{t-1}
  dz: FloatArray, dzOff: number,        // (B, 4H) out: dL/dz_t
): void {
  const G = 4 * H;
  for (let b = 0; b < B; b++) {
    const gb = gOff + b * G, db = dzOff + b * G, sb = b * H;
    for (let j = 0; j < H; j++) {
      const ig = gates[gb + j]!, fg = gates[gb + H + j]!, gg = gates[gb + 2 * H + j]!, og = gates[gb + 3 * H + j]!;
      const tc = tanhC[tOff + sb + j]!;
      const dhv = dh[dhOff + sb + j]!;
      const dcv = dc[dcOff + sb + j]! + dhv * og * (1 - tc * tc);
      dz[db + j] = ig > 0 && ig < 1 ? 0.2 * dcv * gg : 0;
      dz[db + H + j] = fg > 0 && fg < 1 ? 0.2 * dcv * cPrev[cPrevOff + sb + j]! : 0;
      dz[db + 2 * H + j] = dcv * ig * (1 - gg * gg);
      dz[db + 3 * H + j] = og > 0 && og < 1 ? 0.2 * dhv * tc : 0;
      dc[dcOff + sb + j] = dcv * fg;
    }
  }
}
