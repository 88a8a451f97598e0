/**
 * Naive reference kernels: the definitions, written as plainly as possible. Tests and benches check every
 * fast kernel against these before trusting (or timing) it. Not used by the engine.
 */
import type { FloatArray } from "./tensor.js";

/** C (M, N) = op(A) · op(B) (+ C when accumulate), with op = transpose when the flag is set. */
export function naiveMatmul(
  transA: boolean, transB: boolean,
  M: number, N: number, K: number,
  A: FloatArray, aOff: number, lda: number,
  B: FloatArray, bOff: number, ldb: number,
  C: FloatArray, cOff: number, ldc: number,
  accumulate: boolean,
): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const a = transA ? A[aOff + k * lda + i]! : A[aOff + i * lda + k]!;
        const b = transB ? B[bOff + j * ldb + k]! : B[bOff + k * ldb + j]!;
        s += a * b;
      }
      C[cOff + i * ldc + j] = (accumulate ? C[cOff + i * ldc + j]! : 0) + s;
    }
  }
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

const hardSigmoid = (x: number): number => Math.min(1, Math.max(0, 0.2 * x + 0.5));

/** One LSTM step from pre-activations, returning fresh arrays: gates (activated), c, h. */
export function naiveLstmStep(
  B: number, H: number, z: ArrayLike<number>, cPrev: ArrayLike<number>, hard = false,
): { gates: number[]; c: number[]; h: number[] } {
  const gates: number[] = [], c: number[] = [], h: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < 4; k++) {
      for (let j = 0; j < H; j++) {
        const v = z[b * 4 * H + k * H + j]!;
        gates[b * 4 * H + k * H + j] = k === 2 ? Math.tanh(v) : hard ? hardSigmoid(v) : sigmoid(v);
      }
    }
    for (let j = 0; j < H; j++) {
      const i = gates[b * 4 * H + j]!, f = gates[b * 4 * H + H + j]!;
      const g = gates[b * 4 * H + 2 * H + j]!, o = gates[b * 4 * H + 3 * H + j]!;
      const cv = f * cPrev[b * H + j]! + i * g;
      c[b * H + j] = cv;
      h[b * H + j] = o * Math.tanh(cv);
    }
  }
  return { gates, c, h };
}
