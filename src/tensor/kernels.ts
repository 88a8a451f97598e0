/**
 * Hot kernels on raw typed arrays. No ndarray, no closures, no allocation in steady state: every matrix
 * is (array, offset, leading dimension), BLAS style, so a kernel can work on a slice of a larger buffer
 * (one timestep of a (T, B, G) buffer, say) without making a view.
 *
 * Legend: M, N, K are the matmul sizes; B batch, H units, G = 4H gate columns.
 * Every matmul has an `accumulate` flag: false overwrites C, true adds to it (backward accumulates).
 *
 * This is the module the layers, the engine, the tests and the benches import. It holds the public matmuls and
 * their dispatch: the SIMD product when the arrays live in a model's WebAssembly memory (src/wasm/gemm.ts), else
 * one of the TypeScript products, by shape. The rest lives one idea to a file and is re-exported from here:
 * - scalar-matmul.ts: the TypeScript products (the blocked driver, the thin and the shallow products), with
 *   how they are fast in scalar JavaScript;
 * - lstm-gates.ts: an LSTM step's fused gate math, forward and backward, the σ and tanh it inlines, and a
 *   layer's recurrence in one SIMD call;
 * - gru-gates.ts: a GRU step's fused gate math (resetAfter), forward and backward, and hardSigmoid;
 * - bias.ts: a bias added to every row, the bias gradient summed over the rows, clear, and copies (clearRange,
 *   copyRange) that run in SIMD on a model's WebAssembly memory.
 */
import type { FloatArray } from "./tensor.js";
import * as arenas from "../wasm/arena.js";
import { type Gemm, type Hold, HOLD_NEW, HOLD_SAME } from "../wasm/gemm.js";
import { MR, NR, blocked, shallow, thin } from "./scalar-matmul.js";

export { type Hold, HOLD_NEW, HOLD_SAME };
export { addBiasRows, sumRowsInto, clear, clearRange, copyRange } from "./bias.js";
export {
  fastSigmoid, fastTanh, type GatesPlan, type GatesBackPlan, gatesPlan, gatesBackPlan, lstmGatesForward, SMALL_PRODUCT,
  lstmRecurrence, lstmRecurrenceBackward, lstmGatesBackward, lstmGatesBackwardHard,
} from "./lstm-gates.js";
export {
  type GruGatesPlan, type GruGatesBackPlan, gruGatesPlan, gruGatesBackPlan, gruGatesForward, gruGatesBackward, hardSigmoid, hardSigmoidGrad,
} from "./gru-gates.js";

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
