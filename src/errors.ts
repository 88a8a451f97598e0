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

/** Returns v when it is a positive integer, else throws ValueError naming the argument. */
export function checkPositiveInt(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new ValueError(`${name}: expected a positive integer, got ${fmtValue(v)}`);
  }
  return v;
}
