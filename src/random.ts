/**
 * Seeded random tensors, for test inputs, synthetic data and gradient studies: the same seed gives the same
 * values in every JavaScript engine (the draws come from seedrandom's ARC4 stream and our own log and cos, see
 * tensor/math.ts), in float64 or float32.
 */
import { type DType, type Tensor, allocate, checkDType, fromData } from "./tensor/tensor.js";
import { Rng } from "./init.js";
import { ValueError, checkKeys, fmtValue, toSize } from "./errors.js";

export interface RandomNormalOptions { mean?: number; stddev?: number; seed?: number | string; dtype?: DType }
export interface RandomUniformOptions { min?: number; max?: number; seed?: number | string; dtype?: DType }

/** The shape as positive integers (a tensor of zero entries is allowed: a 0 dimension), or a ValueError. */
function checkShape(what: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || shape.length === 0 || shape.some((d) => typeof d !== "number" || !Number.isInteger(d) || d < 0)) {
    throw new ValueError(`${what} shape: expected a non-empty array of non-negative integers like [2, 10, 1], got ${Array.isArray(shape) ? JSON.stringify(shape) : fmtValue(shape)}`);
  }
  const n = shape.reduce((a: number, b: number) => a * b, 1);
  if (n > 2 ** 31) throw new ValueError(`${what} shape: ${JSON.stringify(shape)} has ${n} entries, more than 2^31`);
  return shape.map(toSize);
}

function options<T extends object>(what: string, o: unknown, known: readonly string[]): Partial<T> {
  if (o === undefined) return {};
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw new ValueError(`${what} options: expected an object, got ${fmtValue(o)}`);
  checkKeys(what, o, known);
  return o as Partial<T>;
}

function finite(what: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ValueError(`${what}: expected a finite number, got ${fmtValue(v)}`);
  return v;
}

function rngFor(what: string, seed: unknown, kind: string): Rng {
  if (seed === undefined) return new Rng(`${kind}/${Math.floor(Math.random() * 2 ** 31)}`);
  if ((typeof seed !== "number" || !Number.isFinite(seed)) && typeof seed !== "string") {
    throw new ValueError(`${what} seed: expected a finite number or a string, got ${fmtValue(seed)}`);
  }
  return new Rng(`${kind}/${seed}`);
}

/**
 * A tensor of normal draws, mean `mean` (default 0) and standard deviation `stddev` (default 1).
 *
 * @example
 * const x = randomNormal([4, 20, 1], { seed: 1 });            // float64, N(0, 1)
 * const w = randomNormal([10, 40], { stddev: 0.1, seed: "w", dtype: "float32" });
 */
export function randomNormal(shape: number[], opts?: RandomNormalOptions): Tensor {
  const s = checkShape("randomNormal", shape);
  const o = options<RandomNormalOptions>("randomNormal", opts, ["mean", "stddev", "seed", "dtype"]);
  const mean = finite("randomNormal mean", o.mean, 0), sd = finite("randomNormal stddev", o.stddev, 1);
  if (sd < 0) throw new ValueError(`randomNormal stddev: expected a non-negative number, got ${sd}`);
  const dtype = checkDType("randomNormal dtype", o.dtype ?? "float64");
  const rng = rngFor("randomNormal", o.seed, "randomNormal");
  const out = allocate(dtype, s.reduce((a, b) => a * b, 1));
  for (let i = 0; i < out.length; i++) out[i] = mean + sd * rng.normal();
  return fromData(out, s);
}

/**
 * A tensor of uniform draws in [min, max) (default [0, 1)).
 *
 * @example
 * const x = randomUniform([8, 10, 2], { min: -1, max: 1, seed: 3 });
 */
export function randomUniform(shape: number[], opts?: RandomUniformOptions): Tensor {
  const s = checkShape("randomUniform", shape);
  const o = options<RandomUniformOptions>("randomUniform", opts, ["min", "max", "seed", "dtype"]);
  const lo = finite("randomUniform min", o.min, 0), hi = finite("randomUniform max", o.max, 1);
  if (!(hi > lo)) throw new ValueError(`randomUniform max: expected a number above min (${lo}), got ${hi}`);
  const dtype = checkDType("randomUniform dtype", o.dtype ?? "float64");
  const rng = rngFor("randomUniform", o.seed, "randomUniform");
  const out = allocate(dtype, s.reduce((a, b) => a * b, 1));
  for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * rng.uniform();
  return fromData(out, s);
}
