/**
 * Hot kernels on raw typed arrays. No ndarray, no allocation, no closures: every matrix is
 * (array, offset, leading dimension), BLAS style, so a kernel can work on a slice of a larger buffer
 * (one timestep of a (T, B, G) buffer, say) without making a view.
 *
 * Legend: M, N, K are the matmul sizes; B batch, H units, G = 4H gate columns.
 * Every matmul has an `accumulate` flag: false overwrites C, true adds to it (backward accumulates).
 */
import type { FloatArray } from "./tensor.js";

/**
 * C (M, N) (+)= A (M, K) · B (K, N).
 *
 * Row-oriented axpy form: for each row of A, the rows of B are scaled and summed into the row of C, so
 * the inner loop streams contiguous memory in both B and C.
 */
export function matmulNN(
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number, // (M, K)
  B: FloatArray, bOff: number, ldb: number, // (K, N)
  C: FloatArray, cOff: number, ldc: number, // (M, N)
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

/**
 * C (M, N) (+)= Aᵀ · B, with A stored (K, M) and B (K, N). Used for weight gradients:
 * dKernel = Xᵀ · dZ over all B·T rows at once.
 */
export function matmulTN(
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number, // (K, M)
  B: FloatArray, bOff: number, ldb: number, // (K, N)
  C: FloatArray, cOff: number, ldc: number, // (M, N)
  accumulate: boolean,
): void {
  if (!accumulate) {
    for (let i = 0; i < M; i++) {
      const ci = cOff + i * ldc;
      for (let j = 0; j < N; j++) C[ci + j] = 0;
    }
  }
  let k = 0;
  // Four rows of A and B at a time, so each row of C is read and written once per four updates.
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

/**
 * C (M, N) (+)= A · Bᵀ, with A stored (M, K) and B (N, K). Used for input gradients:
 * dh = dZ · recurrentKernelᵀ and dx = dZ · kernelᵀ. Each entry is a dot product of two contiguous rows.
 */
export function matmulNT(
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number, // (M, K)
  B: FloatArray, bOff: number, ldb: number, // (N, K)
  C: FloatArray, cOff: number, ldc: number, // (M, N)
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
