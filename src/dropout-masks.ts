/**
 * Dropout's masks, as the engine draws them for a training pass (SEMANTICS.md, Keras 3's LSTMCell): one scaled
 * 0 or 1/(1 − p) value per batch row and unit, for the layer's input (`dropout`) and for its recurrent input
 * (`recurrentDropout`), the same at every step of the pass. The thread pool slices one draw by rows, so that
 * any number of threads applies the masks one thread would.
 */
import type { Rng } from "./init.js";

/**
 * One recurrent layer's dropout masks for B rows, scaled 0 or 1/(1 − p): x (dirs·B, I) on its input, h (dirs·B, H)
 * on its recurrent input, null where it has no such dropout (a Bidirectional's forward rows, then its backward's).
 */
export interface DropoutMasks { x: Float64Array | null; h: Float64Array | null }

/** What a draw reads of a recurrent layer. */
interface Dropping { dropout: number; recurrentDropout: number; directions: number; inputDim: number | undefined; stateUnits: number }

/** `n` values, each 0 with probability p and 1/(1 − p) otherwise, from `rng` in order (or `given`'s), into `into` when it fits. */
function fill(rng: Rng, n: number, p: number, given: Float64Array | null | undefined, into: Float64Array | null): Float64Array {
  const m = into && into.length === n ? into : new Float64Array(n);
  if (given) m.set(given);
  else for (let k = 0; k < n; k++) m[k] = rng.uniform() < p ? 0 : 1 / (1 - p);
  return m;
}

/**
 * Draws every layer's masks for B rows from `rng`, in row order, layer by layer (x then h), into `drawn` (reused
 * from draw to draw). `given` (for tests: the masks a reference computed with) replaces the draw of a layer.
 */
export function drawMaskRows(
  layers: readonly Dropping[], rng: Rng, B: number, drawn: DropoutMasks[],
  given: ({ x?: Float64Array | null; h?: Float64Array | null } | null)[] | null,
): DropoutMasks[] {
  layers.forEach((l, i) => {
    const I = l.directions * l.inputDim!, H = l.directions * l.stateUnits; // a Bidirectional's two directions' masks
    const d = (drawn[i] ??= { x: null, h: null });
    d.x = l.dropout > 0 ? fill(rng, B * I, l.dropout, given?.[i]?.x, d.x) : null;
    d.h = l.recurrentDropout > 0 ? fill(rng, B * H, l.recurrentDropout, given?.[i]?.h, d.h) : null;
  });
  return drawn;
}
