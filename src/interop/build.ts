/**
 * What every importer shares: a model is assembled from a file only after the file's weights have been
 * checked against the configuration it asks for, and it is built without initialising weights that are
 * about to be overwritten. Since every weight must be present in the file, the model's allocation is
 * bounded by the file's own size.
 */
import { Sequential, type RunOptions } from "../model.js";
import { type Layer, weightNamesOf } from "../engine.js";
import type { Masking } from "../layers/masking.js";
import type { DType } from "../tensor/tensor.js";
import { FormatError, LongshortError, fmtShape } from "../errors.js";

/** A weight as a file holds it, already in longshort's layout (Keras: kernels (in, out), gate order i, f, c, o). */
export interface ImportedWeight {
  /** Where it came from, for messages: a tensor name of the file. */
  name: string;
  shape: readonly number[];
  data: ArrayLike<number>;
}

/** The shapes in getWeights order that `layers` fed `inputDim` features will have, computed without building. */
export function expectedShapes(layers: readonly Layer[], inputDim: number): number[][] {
  const shapes: number[][] = [];
  let dim = inputDim;
  for (const l of layers) {
    shapes.push(...l.weightShapes(dim));
    dim = l.units;
  }
  return shapes;
}


/**
 * Checks `weights` (getWeights order) against the shapes `layers` need for `inputDim` features, and only then
 * builds the model and copies them in. Throws FormatError (prefixed with `source`) naming the first weight
 * whose shape, length or values are wrong; nothing is allocated for the model before every check has passed.
 */
export function assemble(
  source: string, layers: Layer[], inputDim: number, dtype: DType, weights: readonly ImportedWeight[], seed?: number | string,
  masking: Masking | null = null, run: RunOptions = {},
): Sequential {
  const fail = (msg: string): never => { throw new FormatError(`${source}: ${msg}`); };
  const shapes = expectedShapes(layers, inputDim), names = weightNamesOf(layers);
  if (weights.length !== shapes.length) {
    fail(`expected ${shapes.length} weights (${names.join(", ")}), got ${weights.length}`);
  }
  weights.forEach((w, i) => {
    const want = shapes[i]!;
    if (w.shape.length !== want.length || w.shape.some((d, k) => d !== want[k])) {
      fail(`${w.name} (${names[i]}): expected shape ${fmtShape(want)}, got ${fmtShape(w.shape)}`);
    }
    const n = want.reduce((a, b) => a * b, 1);
    if (w.data.length !== n) fail(`${w.name} (${names[i]}): expected ${n} values, got ${w.data.length}`);
    for (let k = 0; k < n; k++) {
      const v = w.data[k]!;
      if (v - v !== 0) fail(`${w.name} (${names[i]}): non-finite value ${v} at flat index ${k}`);
    }
  });
  let model: Sequential;
  try {
    model = new Sequential(masking ? [masking, ...layers] : layers, seed === undefined ? { dtype, ...run } : { dtype, seed, ...run });
    model.engine.build(inputDim, false);
  } catch (e) {
    if (e instanceof LongshortError && !(e instanceof FormatError)) fail(e.message);
    throw e;
  }
  const params = model!.engine.params;
  let off = 0;
  for (const w of weights) {
    for (let k = 0; k < w.data.length; k++) params[off + k] = w.data[k]!;
    off += w.data.length;
  }
  return model!;
}
