/**
 * Masking for sequences of different lengths (Keras's `Masking`): a step whose every feature equals
 * `maskValue` is skipped. The model's first layer; the LSTM layers above pass their state through a skipped
 * step unchanged, a sequence-returning LSTM repeats its previous output there (zeros before a row's first
 * kept step in a call), and per-step losses average over the kept steps only (SEMANTICS.md, Keras 3).
 *
 * @example
 * new Sequential([new Masking({ maskValue: 0 }), new LSTM({ units: 8, inputDim: 3 }), new Dense({ units: 1 })]);
 */
import { ValueError, checkKeys, fmtValue } from "../errors.js";

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
    const v = options.maskValue ?? 0;
    if (typeof v !== "number" || !Number.isFinite(v)) throw new ValueError(`Masking maskValue: expected a finite number, got ${fmtValue(v)}`);
    this.maskValue = v;
  }
}
