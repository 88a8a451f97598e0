/**
 * Masking for sequences of different lengths (Keras's `Masking`): a step whose every feature equals
 * `maskValue` is skipped. The model's first layer; the recurrent layers above (LSTM, GRU, Bidirectional) pass their
 * state through a skipped step unchanged, a sequence-returning one repeats its previous output there (zeros before a row's first
 * kept step in a call), and per-step losses average over the kept steps only (SEMANTICS.md, Keras 3).
 *
 * @example
 * new Sequential([new Masking({ maskValue: 0 }), new LSTM({ units: 8, inputDim: 3 }), new Dense({ units: 1 })]);
 */
import { ValueError, checkKeys, fmtValue } from "../errors.js";
import type { FloatArray } from "../tensor/tensor.js";

export interface MaskingOptions {
  /** The value that marks a skipped step (every feature equal to it). Default 0. */
  maskValue?: number;
}

export class Masking {
  readonly kind = "masking" as const;
  readonly maskValue: number;
  /** The model this layer belongs to. */
  owner: object | null = null;

  constructor(options: MaskingOptions = {}) {
    if (typeof options !== "object" || options === null) {
      throw new ValueError(`Masking options: expected an object like { maskValue: 0 }, got ${fmtValue(options)}`);
    }
    checkKeys("Masking", options, ["maskValue"]);
    const v: unknown = options.maskValue === undefined ? 0 : options.maskValue; // null is refused below, not taken for 0
    if (typeof v !== "number" || !Number.isFinite(v)) throw new ValueError(`Masking maskValue: expected a finite number, got ${fmtValue(v)}`);
    this.maskValue = v;
  }
}

/**
 * Masking's flags for rows q0 … q1 − 1 of a time-major input (row q = t·B + b, F features each): 1 where a step is
 * kept, 0 where every one of its F features equals `maskValue`.
 */
export function maskSteps(
  xs: FloatArray, F: number, maskValue: number,
  valid: Uint8Array, // (cap, B) out
  q0: number, q1: number,
): void {
  for (let q = q0; q < q1; q++) {
    let keep = 0;
    for (let f = q * F; f < (q + 1) * F; f++) if (xs[f] !== maskValue) { keep = 1; break; }
    valid[q] = keep;
  }
}

/**
 * A recurrent layer's output under a mask (Keras 3's masked RNN): at a masked step the previous output, which is the
 * state the step passed through, and zeros before a row's first kept step of the call (where the state, carried or
 * given, need not be zero); with `zeroOutput` (Keras's `zero_output_for_mask`) zeros at every masked step, so the
 * last step's output is zeros where that step is masked. Per step for steps [t0, t1) into out at t·B·H, or the
 * last step's into out (B, H); `zeroed` marks the rows written as zeros, for the backward.
 */
export function maskedOutputs(
  B: number, H: number, valid: Uint8Array, // (cap, B)
  hs: FloatArray,                           // (cap + 1, B, H): h_t at slot t + 1
  t0: number, t1: number, perStep: boolean,
  out: FloatArray,                          // (cap, B, H) or (B, H) out
  zeroed: Uint8Array,                       // (cap, B) or (B) out
  seen: Uint8Array,                         // (B) scratch
  zeroOutput = false,
): void {
  seen.fill(0, 0, B);
  const BH = B * H;
  for (let t = t0; t < t1; t++) {
    for (let b = 0; b < B; b++) {
      if (valid[t * B + b]) seen[b] = 1;
      else if (zeroOutput) seen[b] = 0; // only the masked step itself is zeroed: the next kept one sets it again
      if (!perStep) continue;
      const o = t * BH + b * H, src = (t + 1) * BH + b * H;
      zeroed[t * B + b] = seen[b] ? 0 : 1;
      if (seen[b]) for (let j = 0; j < H; j++) out[o + j] = hs[src + j]!;
      else out.fill(0, o, o + H);
    }
  }
  if (perStep) return;
  for (let b = 0; b < B; b++) {
    const o = b * H, src = t1 * BH + b * H;
    zeroed[b] = seen[b] ? 0 : 1;
    if (seen[b]) for (let j = 0; j < H; j++) out[o + j] = hs[src + j]!;
    else out.fill(0, o, o + H);
  }
}

/** The backward of `maskedOutputs`: the gradient reaching a zero output is dropped (in dOut, in place). */
export function maskedOutputsBackward(
  B: number, H: number, zeroed: Uint8Array,
  dOut: { buf: FloatArray; off: number; from: number }, // per step: step t at off + (t − from)·B·H; or (B, H) at off
  from: number, t1: number, perStep: boolean,
): void {
  const d = dOut.buf, BH = B * H;
  if (!perStep) {
    for (let b = 0; b < B; b++) if (zeroed[b]) d.fill(0, dOut.off + b * H, dOut.off + (b + 1) * H);
    return;
  }
  for (let t = from; t < t1; t++) {
    const o = dOut.off + (t - dOut.from) * BH;
    for (let b = 0; b < B; b++) if (zeroed[t * B + b]) d.fill(0, o + b * H, o + (b + 1) * H);
  }
}

/** Moves `keep` steps of a per-step masked output (and its flags) from step `drop` to the front. */
export function shiftMaskedOutputs(B: number, H: number, out: FloatArray | null, zeroed: Uint8Array | null, drop: number, keep: number): void {
  out?.copyWithin(0, drop * B * H, (drop + keep) * B * H);
  zeroed?.copyWithin(0, drop * B, (drop + keep) * B);
}
