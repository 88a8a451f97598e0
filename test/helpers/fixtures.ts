/**
 * Loads the golden fixtures (computed with PyTorch 1.13 autograd in float64 by the project's copy of
 * generate.py's rules, see test/fixtures/README.md) and compares arrays with a named error.
 */
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { expect } from "vitest";

export const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures");

/** The fixtures of one kind (every kind when undefined) for one cell: "lstm" (files without `cell`) or "gru". */
export function loadFixtures(kind?: string, cell: "lstm" | "gru" | "bidirectional" = "lstm"): any[] {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => ({ file: f, ...JSON.parse(readFileSync(join(FIXTURE_DIR, f), "utf8")) }))
    .filter((f) => (kind === undefined || f.kind === kind) && (f.cell ?? "lstm") === cell);
}

export function flat(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.flatMap(flat);
  if (ArrayBuffer.isView(v)) return Array.from(v as Float64Array);
  if (v && typeof v === "object" && "data" in v && "shape" in v) {
    const t = v as { data: ArrayLike<number>; shape: number[] };
    return Array.from(t.data).slice(0, t.shape.reduce((a, b) => a * b, 1));
  }
  throw new Error(`flat: cannot flatten ${typeof v}`);
}

export function shapeOf(v: unknown): number[] {
  return Array.isArray(v) ? [v.length, ...shapeOf(v[0])] : [];
}

/**
 * Worst relative error |a - e| / max(|e|, atol/rtol...) in the sense used by the fixtures' README:
 * relative error ≤ rtol, absolute ≤ atol near zero. Fails naming the field and the worst index.
 */
export function expectClose(name: string, actual: unknown, expected: unknown, rtol: number, atol: number): void {
  const a = flat(actual), e = flat(expected);
  expect(a.length, `${name}: length`).toBe(e.length);
  let worst = 0, at = -1;
  for (let i = 0; i < e.length; i++) {
    const err = Math.abs(a[i]! - e[i]!);
    const ok = err <= atol || err <= rtol * Math.abs(e[i]!);
    const score = err / Math.max(rtol * Math.abs(e[i]!), atol);
    if (!ok && score > worst) { worst = score; at = i; }
    if (Number.isNaN(a[i]!)) { worst = Infinity; at = i; }
  }
  if (at >= 0) {
    expect.fail(`${name}: index ${at}: got ${a[at]}, expected ${e[at]} (rtol ${rtol}, atol ${atol})`);
  }
}
