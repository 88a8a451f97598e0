/**
 * The TypeScript matmuls: C (M, N) (+)= op(A) · op(B) for the three forms (A·B, Aᵀ·B, A·Bᵀ), which kernels.ts's
 * matmulNN, matmulTN and matmulNT run when the SIMD backend does not take the product; its dispatch picks
 * `shallow`, `thin` or `blocked` by shape. Every matrix is (array, offset, leading dimension), BLAS style.
 *
 * Legend: M, N, K are the matmul sizes, op(A) (M, K) and op(B) (K, N); MR × NR is the micro-tile, KC and MC
 * the depth of a K block and the rows of A packed at once. `accumulate` false overwrites C, true adds to it.
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

// ---------------------------------------------------------------------------------------------------
// Tuning (measured on a 2-core Zen server with Node 20; see bench/matmul.ts)

/** Rows of op(A) per micro-tile. */
export const MR = 4;
/** Columns of op(B) per micro-tile. 4×3 (12 accumulators) measured ~5% faster than 4×4 in V8: 16
 * accumulators plus the operands no longer fit the 16 xmm registers and spill every iteration. */
export const NR = 3;
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
export function blocked(
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
export function thin(
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
export function shallow(
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
