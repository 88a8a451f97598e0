/**
 * The library's errors. Every public entry validates its arguments and throws one of these, with a
 * message that names the argument, what was expected and what was given.
 *
 * @example
 * try { model.predict(badInput); } catch (e) { if (e instanceof ShapeError) console.log(e.message); }
 */
export class LongshortError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A tensor has the wrong rank or a wrong dimension (ragged nested arrays included). */
export class ShapeError extends LongshortError {}

/** A value is out of its domain: non-finite numbers, labels outside [0, 1], unknown names, bad counts. */
export class ValueError extends LongshortError {}

/** The model is not in a state where the call makes sense (not compiled, not built). */
export class StateError extends LongshortError {}

/** A training step produced a non-finite loss, gradient or weight; nothing was changed. */
export class NonFiniteError extends LongshortError {}

/** A checkpoint could not be read: truncated, corrupted, or written by a newer format version. */
export class CheckpointError extends LongshortError {}

/**
 * Bytes or an object in an outside format (safetensors, TensorFlow.js artifacts, ONNX) could not be read:
 * truncated, malformed, or asking for something the engine does not compute (the message names it).
 */
export class FormatError extends LongshortError {}

/** Formats a shape for messages: `[2, 10, 1]`. */
export function fmtShape(shape: readonly number[]): string {
  // Entries are formatted one by one: a bad "shape" given by a user may hold anything (even objects
  // that cannot be converted to strings), and the error message must not throw in turn.
  return `[${shape.map((d) => (typeof d === "number" ? String(d) : fmtValue(d))).join(", ")}]`;
}

/** Formats any value for messages, briefly. */
export function fmtValue(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean" || v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (typeof v === "object") return `an object (${(v as object).constructor?.name ?? "Object"})`;
  return typeof v;
}

/**
 * fmtValue of a value refused for not being an instance of one of `classes` (the package's own, named as their
 * constructors are): when its constructor has one of those names it is almost surely one from a second copy of
 * the package, which `instanceof` does not see (a program that loads longshort with both import and require gets
 * its ES module and CommonJS builds, each with its own classes), and the message says so.
 *
 * @example
 * fmtInstance(modelFromRequire, "Sequential");
 * // 'an object (Sequential) from another copy of longshort: …'
 */
export function fmtInstance(v: unknown, ...classes: string[]): string {
  const s = fmtValue(v);
  const name = typeof v === "object" && v !== null ? (v as object).constructor?.name : undefined;
  if (name === undefined || !classes.includes(name)) return s;
  return `${s} from another copy of longshort: this program has loaded the package twice (with both import and require, ` +
    `which give its ES module and its CommonJS builds, or two installed versions), and one copy's ${name} is not the other's; ` +
    `load longshort one way throughout (all import, or all require)`;
}

/**
 * Refuses every key of an options object that is not one of `known`, with a ValueError that names the key and,
 * when one is close (a typo, another casing, snake_case), the key meant: `new Adam({ learning_rate: 0.1 })`
 * would otherwise train at the default rate without a word.
 *
 * @example
 * checkKeys("LSTM", { units: 4, returnSequence: true }, ["units", "returnSequences"]);
 * // ValueError: LSTM options: unknown option "returnSequence" (did you mean "returnSequences"?); …
 */
export function checkKeys(what: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const meant = closestKey(key, known);
    throw new ValueError(
      `${what} options: unknown option ${JSON.stringify(key)}${meant ? ` (did you mean ${JSON.stringify(meant)}?)` : ""}; ` +
      `the options are ${known.map((k) => JSON.stringify(k)).join(", ")}`,
    );
  }
}

/** The known key nearest to `key`: the same letters up to case and underscores, a key it abbreviates, else one
 * within a small edit distance. */
function closestKey(key: string, known: readonly string[]): string | undefined {
  const norm = (s: string): string => s.replaceAll("_", "").toLowerCase();
  const exact = known.find((k) => norm(k) === norm(key));
  if (exact) return exact;
  // An abbreviation: "std" for "stddev", "eps" for "epsilon".
  const prefix = key.length >= 3 ? known.find((k) => norm(k).startsWith(norm(key))) : undefined;
  if (prefix) return prefix;
  let best: string | undefined, bestD = Math.max(1, Math.min(3, Math.floor(key.length / 3)));
  for (const k of known) {
    const d = editDistance(norm(key), norm(k));
    if (d <= bestD) { best = k; bestD = d - 1; }
  }
  return best;
}

/** Edit distance counting insertions, deletions, substitutions and swaps of neighbours (the usual typos). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * Returns v when it is a positive integer, else throws ValueError naming the argument. The value returned is
 * a small integer in V8's sense (`v | 0`): a size read from an array that also holds a fraction arrives boxed
 * as a double, and indexing hot loops with doubles measured a training step 2× slower (S2: 109 vs 58 ms).
 */
export function checkPositiveInt(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new ValueError(`${name}: expected a positive integer, got ${fmtValue(v)}`);
  }
  return toSize(v);
}

/** An integer size as a V8 small integer when it fits 31 bits (see checkPositiveInt), else as it is. */
export function toSize(v: number): number {
  return v <= 0x3fffffff ? v | 0 : v;
}
