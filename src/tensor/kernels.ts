/**
 * Hot kernels on raw typed arrays. No ndarray, no closures, no allocation in steady state: every matrix
 * is (array, offset, leading dimension), BLAS style, so a kernel can work on a slice of a larger buffer
 * (one timestep of a (T, B, G) buffer, say) without making a view.
 *
 * Legend: M, N, K are the matmul sizes; B batch, H units, G = 4H gate columns.
 * Every matmul has an `accumulate` flag: false overwrites C, true adds to it (backward accumulates).
 *
 * How the matmuls are fast in scalar JavaScript (V8 emits no SIMD for plain loops):
 * - Large products run through one blocked driver shared by A·B, Aᵀ·B and A·Bᵀ. A 4×4 micro-kernel keeps
 *   16 independent accumulators in registers and, per step of k, loads 4 values of op(A) and 4 of op(B)
 *   for 16 multiply-adds.
 * - It reads both operands from packed panels (4 consecutive values per k), filled one K block at a time
 *   into module-level scratch that grows on demand and is then reused: no allocation in steady state.
 *   Packing is what makes Aᵀ·B and A·Bᵀ as fast as A·B (tfjs's wasm backend loses 10× on them), and it
 *   removes the cache-set conflicts of walking down a column with a power-of-two leading dimension.
 * - K is cut into blocks of KC and M into blocks of MC, so the packed A block stays in L2 and one
 *   (KC, 4) panel of B stays in L1 while the micro-kernel sweeps down the rows.
 * - Panels are zero-padded to a multiple of 4: the ragged edge runs the same micro-kernel into a 4×4 tile.
 * - Small products (one sequence, a few units: the per-step matmuls of a toy model) skip all of that:
 *   the simple loops below have no set-up cost, and at those sizes set-up is what dominates.
 */
import type { FloatArray } from "./tensor.js";

// ---------------------------------------------------------------------------------------------------
// Tuning (measured on a 2-core Zen server with Node 20; see bench/matmul.ts)

/** Depth of one K block: a 4-wide sliver of B (KC × 4) fits L1 with room to spare. */
const KC = 256;
/** Rows of A packed at once: MC × KC doubles = 256 KB, comfortably inside L2. */
const MC = 128;
/** Below this many multiply-adds (M·N·K), or with a side shorter than 4, the simple loops win. */
const SMALL_WORK = 4096;

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

/** A 4×4 tile for the partial tiles at the ragged edge, in C's dtype. */
const tile64 = new Float64Array(16);
const tile32 = new Float32Array(16);

function tileFor(like: FloatArray): FloatArray {
  return like instanceof Float32Array ? tile32 : tile64;
}

function scratchB(like: FloatArray, n: number): FloatArray {
  if (like instanceof Float32Array) {
    if (packB32.length < n) packB32 = new Float32Array(n);
    return packB32;
  }
  if (packB64.length < n) packB64 = new Float64Array(n);
  return packB64;
}

// ---------------------------------------------------------------------------------------------------
// Public matmuls

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
): void {
  if (isSmall(M, N, K)) smallNN(M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc, accumulate);
  else blocked(false, false, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc, accumulate);
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
  if (isSmall(M, N, K)) smallTN(M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc, accumulate);
  else blocked(true, false, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc, accumulate);
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
): void {
  if (isSmall(M, N, K)) smallNT(M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc, accumulate);
  else blocked(false, true, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc, accumulate);
}

function isSmall(M: number, N: number, K: number): boolean {
  return M < 4 || N < 4 || K < 4 || M * N * K < SMALL_WORK;
}

// ---------------------------------------------------------------------------------------------------
// The blocked driver

/**
 * C (M, N) (+)= op(A) · op(B) for the three forms. Both operands are packed, one K block at a time, into
 * panels of 4 (rows of op(A), columns of op(B)) laid out k-major, so the micro-kernel reads 4 consecutive
 * values per k from each whatever the original layout: packing is what makes Aᵀ·B and A·Bᵀ cost the
 * same as A·B, and it also removes the cache-set conflicts that power-of-two leading dimensions (G = 4H)
 * cause when a kernel walks down a column. Panels are zero-padded to a multiple of 4, so the ragged edge
 * runs the same micro-kernel and only its store is partial.
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
  const nPad = (N + 3) & ~3;
  for (let p0 = 0; p0 < K; p0 += KC) {
    const kc = K - p0 < KC ? K - p0 : KC;
    // The first K block honours `accumulate`; later ones add to what the earlier ones wrote.
    const add = accumulate || p0 > 0;
    const bp = scratchB(B, kc * nPad); // nPad/4 panels of (kc, 4)
    if (transB) packRows(N, kc, B, bOff + p0, ldb, bp);
    else packCols(N, kc, B, bOff + p0 * ldb, ldb, bp);
    for (let i0 = 0; i0 < M; i0 += MC) {
      const mc = M - i0 < MC ? M - i0 : MC;
      const ap = scratchA(A, kc * ((mc + 3) & ~3)); // panels of (kc, 4)
      if (transA) packCols(mc, kc, A, aOff + p0 * lda + i0, lda, ap);
      else packRows(mc, kc, A, aOff + i0 * lda + p0, lda, ap);
      // j outside, i inside: one (kc, 4) panel of B is reused from L1 by every row panel of the block.
      for (let j = 0; j < N; j += 4) {
        const pb = j * kc;
        const nr = N - j < 4 ? N - j : 4;
        for (let i = 0; i < mc; i += 4) {
          const mr = mc - i < 4 ? mc - i : 4;
          const pc = cOff + (i0 + i) * ldc + j;
          if (mr === 4 && nr === 4) micro4x4(kc, ap, i * kc, bp, pb, C, pc, ldc, add);
          else {
            const t = tileFor(C);
            micro4x4(kc, ap, i * kc, bp, pb, t, 0, 4, false);
            for (let r = 0; r < mr; r++) {
              for (let c = 0; c < nr; c++) {
                const o = pc + r * ldc + c;
                C[o] = add ? C[o]! + t[4 * r + c]! : t[4 * r + c]!;
              }
            }
          }
        }
      }
    }
  }
}

/**
 * Packs R rows of kc values, row r at src[off + r·ld …] (contiguous in k), into ceil(R/4) panels of
 * (kc, 4): dst[p·4kc + 4k + r'] = row 4p + r' at k, zero past row R.
 */
function packRows(R: number, kc: number, src: FloatArray, off: number, ld: number, dst: FloatArray): void {
  const R4 = R & ~3;
  let r = 0;
  for (; r < R4; r += 4) {
    const s0 = off + r * ld, s1 = s0 + ld, s2 = s1 + ld, s3 = s2 + ld;
    let d = r * kc;
    for (let k = 0; k < kc; k++) {
      dst[d] = src[s0 + k]!;
      dst[d + 1] = src[s1 + k]!;
      dst[d + 2] = src[s2 + k]!;
      dst[d + 3] = src[s3 + k]!;
      d += 4;
    }
  }
  if (r < R) {
    for (let q = 0; q < 4; q++) {
      const s = off + (r + q) * ld;
      let d = r * kc + q;
      if (r + q < R) for (let k = 0; k < kc; k++) { dst[d] = src[s + k]!; d += 4; }
      else for (let k = 0; k < kc; k++) { dst[d] = 0; d += 4; }
    }
  }
}

/**
 * Packs Q columns of kc rows, row k at src[off + k·ld …] (contiguous across columns), into ceil(Q/4)
 * panels of (kc, 4): dst[p·4kc + 4k + q'] = src[off + k·ld + 4p + q'], zero past column Q.
 */
function packCols(Q: number, kc: number, src: FloatArray, off: number, ld: number, dst: FloatArray): void {
  const Q4 = Q & ~3, step = 4 * kc;
  for (let k = 0; k < kc; k++) {
    const s = off + k * ld;
    let d = 4 * k;
    let q = 0;
    for (; q < Q4; q += 4) {
      dst[d] = src[s + q]!;
      dst[d + 1] = src[s + q + 1]!;
      dst[d + 2] = src[s + q + 2]!;
      dst[d + 3] = src[s + q + 3]!;
      d += step;
    }
    if (q < Q) for (let c = 0; c < 4; c++) dst[d + c] = q + c < Q ? src[s + q + c]! : 0;
  }
}

/**
 * The 4×4 micro-kernel over packed panels: C[0:4, 0:4] (+)= Σ_k a(·, k) b(k, ·), with a(r, k) =
 * A[pa + 4k + r] and b(k, c) = B[pb + 4k + c]. Sixteen independent accumulators, so no add waits on
 * another; each k costs 8 loads for 16 multiply-adds.
 */
function micro4x4(
  K: number,
  A: FloatArray, pa: number,
  B: FloatArray, pb: number,
  C: FloatArray, pc: number, ldc: number,
  add: boolean,
): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  for (let k = 0; k < K; k++) {
    const b0 = B[pb]!, b1 = B[pb + 1]!, b2 = B[pb + 2]!, b3 = B[pb + 3]!;
    let a = A[pa]!;
    c00 += a * b0; c01 += a * b1; c02 += a * b2; c03 += a * b3;
    a = A[pa + 1]!;
    c10 += a * b0; c11 += a * b1; c12 += a * b2; c13 += a * b3;
    a = A[pa + 2]!;
    c20 += a * b0; c21 += a * b1; c22 += a * b2; c23 += a * b3;
    a = A[pa + 3]!;
    c30 += a * b0; c31 += a * b1; c32 += a * b2; c33 += a * b3;
    pa += 4;
    pb += 4;
  }
  const r0 = pc, r1 = r0 + ldc, r2 = r1 + ldc, r3 = r2 + ldc;
  if (add) {
    C[r0] = C[r0]! + c00; C[r0 + 1] = C[r0 + 1]! + c01; C[r0 + 2] = C[r0 + 2]! + c02; C[r0 + 3] = C[r0 + 3]! + c03;
    C[r1] = C[r1]! + c10; C[r1 + 1] = C[r1 + 1]! + c11; C[r1 + 2] = C[r1 + 2]! + c12; C[r1 + 3] = C[r1 + 3]! + c13;
    C[r2] = C[r2]! + c20; C[r2 + 1] = C[r2 + 1]! + c21; C[r2 + 2] = C[r2 + 2]! + c22; C[r2 + 3] = C[r2 + 3]! + c23;
    C[r3] = C[r3]! + c30; C[r3 + 1] = C[r3 + 1]! + c31; C[r3 + 2] = C[r3 + 2]! + c32; C[r3 + 3] = C[r3 + 3]! + c33;
  } else {
    C[r0] = c00; C[r0 + 1] = c01; C[r0 + 2] = c02; C[r0 + 3] = c03;
    C[r1] = c10; C[r1 + 1] = c11; C[r1 + 2] = c12; C[r1 + 3] = c13;
    C[r2] = c20; C[r2 + 1] = c21; C[r2 + 2] = c22; C[r2 + 3] = c23;
    C[r3] = c30; C[r3 + 1] = c31; C[r3 + 2] = c32; C[r3 + 3] = c33;
  }
}

// ---------------------------------------------------------------------------------------------------
// The simple loops for small products: no packing, no tiles, nothing to set up.

/** Row-oriented axpy form: the inner loop streams contiguous memory in both B and C. */
function smallNN(
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number,
  B: FloatArray, bOff: number, ldb: number,
  C: FloatArray, cOff: number, ldc: number,
  accumulate: boolean,
): void {
  for (let i = 0; i < M; i++) {
    const ci = cOff + i * ldc;
    if (!accumulate) for (let j = 0; j < N; j++) C[ci + j] = 0;
    const ai = aOff + i * lda;
    let k = 0;
    // Four rows of B at a time: one pass over C's row per four multiply-adds.
    for (; k + 3 < K; k += 4) {
      const a0 = A[ai + k]!, a1 = A[ai + k + 1]!, a2 = A[ai + k + 2]!, a3 = A[ai + k + 3]!;
      const b0 = bOff + k * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
      for (let j = 0; j < N; j++) {
        C[ci + j] = C[ci + j]! + a0 * B[b0 + j]! + a1 * B[b1 + j]! + a2 * B[b2 + j]! + a3 * B[b3 + j]!;
      }
    }
    for (; k < K; k++) {
      const a = A[ai + k]!;
      const bk = bOff + k * ldb;
      for (let j = 0; j < N; j++) C[ci + j] = C[ci + j]! + a * B[bk + j]!;
    }
  }
}

/** Outer-product form over k: each row of C is read and written once per four rows of A and B. */
function smallTN(
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number,
  B: FloatArray, bOff: number, ldb: number,
  C: FloatArray, cOff: number, ldc: number,
  accumulate: boolean,
): void {
  if (!accumulate) {
    for (let i = 0; i < M; i++) {
      const ci = cOff + i * ldc;
      for (let j = 0; j < N; j++) C[ci + j] = 0;
    }
  }
  let k = 0;
  for (; k + 3 < K; k += 4) {
    const a0 = aOff + k * lda, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda;
    const b0 = bOff + k * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
    for (let i = 0; i < M; i++) {
      const x0 = A[a0 + i]!, x1 = A[a1 + i]!, x2 = A[a2 + i]!, x3 = A[a3 + i]!;
      const ci = cOff + i * ldc;
      for (let j = 0; j < N; j++) {
        C[ci + j] = C[ci + j]! + x0 * B[b0 + j]! + x1 * B[b1 + j]! + x2 * B[b2 + j]! + x3 * B[b3 + j]!;
      }
    }
  }
  for (; k < K; k++) {
    const ak = aOff + k * lda, bk = bOff + k * ldb;
    for (let i = 0; i < M; i++) {
      const x = A[ak + i]!;
      const ci = cOff + i * ldc;
      for (let j = 0; j < N; j++) C[ci + j] = C[ci + j]! + x * B[bk + j]!;
    }
  }
}

/** Dot-product form: each entry is a dot product of two contiguous rows. */
function smallNT(
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number,
  B: FloatArray, bOff: number, ldb: number,
  C: FloatArray, cOff: number, ldc: number,
  accumulate: boolean,
): void {
  for (let i = 0; i < M; i++) {
    const ai = aOff + i * lda;
    const ci = cOff + i * ldc;
    for (let j = 0; j < N; j++) {
      const bj = bOff + j * ldb;
      // Four independent accumulators break the add dependency chain.
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      let k = 0;
      for (; k + 3 < K; k += 4) {
        s0 += A[ai + k]! * B[bj + k]!;
        s1 += A[ai + k + 1]! * B[bj + k + 1]!;
        s2 += A[ai + k + 2]! * B[bj + k + 2]!;
        s3 += A[ai + k + 3]! * B[bj + k + 3]!;
      }
      for (; k < K; k++) s0 += A[ai + k]! * B[bj + k]!;
      const s = s0 + s1 + (s2 + s3);
      C[ci + j] = accumulate ? C[ci + j]! + s : s;
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
  for (let i = 0; i < M; i++) {
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
  for (let i = 0; i < M; i++) {
    const yi = yOff + i * ldy;
    for (let j = 0; j < N; j++) dBias[bOff + j] = dBias[bOff + j]! + dY[yi + j]!;
  }
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
): void {
  const G = 4 * H;
  for (let b = 0; b < B; b++) {
    const zb = zOff + b * G;
    const sb = b * H;
    for (let j = 0; j < H; j++) {
      const zi = zb + j, zf = zi + H, zg = zf + H, zo = zg + H;
      const ig = 1 / (1 + Math.exp(-z[zi]!));
      const fg = 1 / (1 + Math.exp(-z[zf]!));
      const gg = Math.tanh(z[zg]!);
      const og = 1 / (1 + Math.exp(-z[zo]!));
      z[zi] = ig; z[zf] = fg; z[zg] = gg; z[zo] = og;
      const cv = fg * cPrev[cPrevOff + sb + j]! + ig * gg;
      c[cOff + sb + j] = cv;
      const tc = Math.tanh(cv);
      tanhC[tOff + sb + j] = tc;
      h[hOff + sb + j] = og * tc;
    }
  }
}

/**
 * The backward of `lstmGatesForward` for one step. Takes dh (the full gradient reaching h_t) and
 * dc (the gradient reaching c_t from step t+1), writes dz (B, 4H) and replaces dc by the gradient
 * reaching c_{t-1}, which is dc ⊙ f.
 */
export function lstmGatesBackward(
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
    const gb = gOff + b * G;
    const db = dzOff + b * G;
    const sb = b * H;
    for (let j = 0; j < H; j++) {
      const ig = gates[gb + j]!, fg = gates[gb + H + j]!, gg = gates[gb + 2 * H + j]!, og = gates[gb + 3 * H + j]!;
      const tc = tanhC[tOff + sb + j]!;
      const dhv = dh[dhOff + sb + j]!;
      // c_t reaches the loss through h_t = o ⊙ tanh(c_t) and through c_{t+1} = f ⊙ c_t + …
      const dcv = dc[dcOff + sb + j]! + dhv * og * (1 - tc * tc);
      dz[db + j] = dcv * gg * ig * (1 - ig);
      dz[db + H + j] = dcv * cPrev[cPrevOff + sb + j]! * fg * (1 - fg);
      dz[db + 2 * H + j] = dcv * ig * (1 - gg * gg);
      dz[db + 3 * H + j] = dhv * tc * og * (1 - og);
      dc[dcOff + sb + j] = dcv * fg;
    }
  }
}
