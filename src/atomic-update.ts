/**
 * The optimizer step applied atomically: if the loss, a gradient or a new weight is not finite, the weights and
 * the optimizer's state are restored, and the step reports it (or throws, as `onNonFinite` says). The engine
 * calls it once per training step; the thread pool calls it on the merged gradients.
 *
 * Legend: P parameters.
 */
import * as arenas from "./wasm/arena.js";
import { type DType, type FloatArray, allocate } from "./tensor/tensor.js";
import type { Optimizer } from "./optimizers.js";
import { NonFiniteError } from "./errors.js";

/** The largest finite float32. */
const FLOAT32_MAX = 3.4028234663852886e38;

/** Σ x² over x's first n values: in SIMD when x lives in an arena (see update.ts), else here. */
function sumSquares(x: FloatArray, n: number): number {
  const k = arenas.anyArena ? arenas.sumSquaresFor(x) : null;
  if (k) return k(n, arenas.at[0]!);
  let q = 0;
  for (let i = 0; i < n; i++) q += x[i]! * x[i]!;
  return q;
}

/** The buffers a rollback restores from, kept per model and reused. */
export class UpdateBackup {
  params: FloatArray = new Float64Array(0); // (P) params before an update
  slots: Float64Array[] = [];               // optimizer state before an update
}

/**
 * Applies `opt` to params from grads atomically: if the loss, a gradient or a new weight is not finite, everything
 * is restored and false is returned (or NonFiniteError thrown when `onNonFinite` is "throw"). The backup that
 * restoring needs is taken only when the optimizer's `maxStep` cannot show that no new weight or slot value
 * can overflow (in training it nearly always can: the update then costs a read of the gradients, weights and
 * first slot, and the optimizer's own pass).
 */
export function applyUpdate(
  opt: Optimizer, params: FloatArray, grads: FloatArray, // (P) each
  loss: number, what: string, onNonFinite: "throw" | "skip", dtype: DType, backup: UpdateBackup,
): boolean {
  let bad = !Number.isFinite(loss) ? "loss" : "";
  if (!bad) {
    // Sums of squares of the gradients, the weights and the first slot: each bounds the largest entry
    // (|x| ≤ ‖x‖₂), and is finite only if every entry is. When all three are finite and the optimizer's step
    // cannot take a weight or a slot out of range, update in place without the backup. (Max-of-|x| loops ran
    // slower: a chain of dependent Math.max, or branches.)
    const slot = opt.slots()[0] ?? null, n = grads.length;
    const gq = sumSquares(grads, n), pq = sumSquares(params, n);
    // (a slot that does not match the weights, never after compile, gives no bound)
    const sq = slot === null ? 0 : slot.length === n ? sumSquares(slot, n) : Infinity;
    const limit = (params instanceof Float32Array ? FLOAT32_MAX : Number.MAX_VALUE) / 2;
    // (NaN or Infinity in a sum fails the test; finite-but-huge entries overflow it: the careful path below.)
    if (Math.sqrt(pq) + opt.maxStep(Math.sqrt(gq), Math.sqrt(sq), Math.sqrt(pq)) < limit) {
      opt.apply(params, grads);
      return true;
    }
    let s = 0;
    for (let k = 0; k < n; k++) s += grads[k]! * 0;
    if (s !== 0) bad = "gradients"; // 0·x is NaN exactly when x is not finite
  }
  if (!bad) {
    if (backup.params.length !== params.length) backup.params = allocate(dtype, params.length);
    backup.params.set(params);
    const slots = opt.slots();
    let fits = backup.slots.length === slots.length;
    for (let i = 0; fits && i < slots.length; i++) fits = backup.slots[i]!.length === slots[i]!.length;
    if (!fits) backup.slots = slots.map((sl) => new Float64Array(sl.length));
    for (let i = 0; i < slots.length; i++) backup.slots[i]!.set(slots[i]!);
    const iterations = opt.iterations;
    opt.apply(params, grads);
    let s = 0;
    for (let k = 0; k < params.length; k++) s += params[k]! * 0;
    for (const sl of slots) for (let k = 0; k < sl.length; k++) s += sl[k]! * 0; // Adam v = inf would brick later steps
    if (s !== 0) {
      params.set(backup.params);
      for (let i = 0; i < slots.length; i++) slots[i]!.set(backup.slots[i]!);
      opt.iterations = iterations;
      bad = "updated weights";
    }
  }
  if (!bad) return true;
  if (onNonFinite === "skip") return false;
  throw new NonFiniteError(`${what}: the step produced non-finite ${bad} (loss ${loss}); weights, optimizer state and LSTM states were left unchanged. Lower the learning rate, clip gradients (clipNorm), or check the inputs`);
}
