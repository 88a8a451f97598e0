/**
 * The README's quick start and its interop block, run as written (their `from "longshort"` import is rewritten
 * to ../src/index.js below).
 */
import { describe, it, expect, vi } from "vitest";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "..", "README.md"), "utf8");

/** Runs the first ```ts block after `heading` as a module, returning what it logged (console.warn is muted:
 * tfjs advises installing tfjs-node there). */
async function runBlock(heading: string, name: string, nth = 1): Promise<unknown[][]> {
  const block = readme.split(heading)[1]!.split("```ts")[nth]!.split("```")[0]!;
  const file = join(dirname(fileURLToPath(import.meta.url)), `.readme-${name}.test-tmp.ts`);
  writeFileSync(file, block.replace(`from "longshort"`, `from "../src/index.js"`) + "\nexport {};\n");
  const logs: unknown[][] = [];
  vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => { logs.push(a); });
  vi.spyOn(console, "warn").mockImplementation(() => undefined);
  try {
    await import(/* @vite-ignore */ file);
  } finally {
    vi.restoreAllMocks();
    rmSync(file, { force: true });
  }
  return logs;
}

describe("README", () => {
  it("the quick start runs and learns the toy task", async () => {
    const logs = await runBlock("## Quick start", "quickstart");
    expect(logs).toHaveLength(1);
    const [acc, probs] = logs[0] as [number, Float64Array];
    expect(acc).toBe(1);
    expect(Array.from(probs).map((p) => (p > 0.5 ? 1 : 0))).toEqual([1, 0, 1, 0]);
  });

  it("the gradient-study block runs: the checks pass and every window reports its reach", async () => {
    const logs = await runBlock("## Studying gradients", "study");
    const [last, first] = logs[0] as [number, number];
    expect(last).toBeGreaterThan(first); // the gradient fades going back
    expect(logs[1]).toEqual([true, 5, 40, ["lstm_0/h", "lstm_0/c"]]);
    expect(logs.slice(2)).toEqual([[0, 10, 10, [4, 10, 2]], [1, 20, 20, [4, 20, 2]], [2, 20, 20, [4, 20, 2]]]);
  });

  it("the classes block runs: masking, dropout, a schedule and a softmax head learn the task", async () => {
    const logs = await runBlock("## Classes, variable lengths, dropout, schedules", "classes");
    const [acc, shape] = logs[0] as [number, number[]];
    expect(acc).toBeGreaterThan(0.9);
    expect(shape).toEqual([60, 3]);
  });

  it("the layer-orders block runs: each model predicts the shape its comment says", async () => {
    const logs = await runBlock("## Layer orders", "orders");
    expect(logs).toEqual([[[[4, 1], [4, 1], [4, 8], [4, 10, 8]]]]);
  });

  it("the GRU block runs: stacked GRUs predict [4, 1], and a GRU's state is { h }", async () => {
    const block = readme.split("## Layer orders")[1]!.split("## ")[0]!;
    const nth = block.split("```ts").findIndex((b) => b.split("```")[0]!.includes("new GRU("));
    expect(nth).toBeGreaterThan(0);
    const logs = await runBlock("## Layer orders", "gru", nth);
    expect(logs).toEqual([[[4, 1], ["h"]]]);
  });

  it("the Bidirectional block runs: a text model over ids predicts [2, 1], and a Bidirectional(LSTM) names four states", async () => {
    const block = readme.split("## Layer orders")[1]!.split("## ")[0]!;
    const nth = block.split("```ts").findIndex((b) => b.split("```")[0]!.includes("new Bidirectional("));
    expect(nth).toBeGreaterThan(0);
    const logs = await runBlock("## Layer orders", "bidirectional", nth);
    expect(logs).toEqual([[[2, 1], ["h", "c", "hBackward", "cBackward"]]]);
  });

  it("the travel block runs with the real TensorFlow.js and ONNX Runtime, and all four agree", async () => {
    const logs = await runBlock("## Models that travel", "travel");
    const four = logs[logs.length - 1] as number[];
    expect(four).toHaveLength(4);
    expect(four[0]).toBeGreaterThan(0);
    expect(four[1]).toBe(four[0]); // safetensors in float64: bit for bit
    for (const v of four.slice(2)) expect(Math.abs(v - four[0]!)).toBeLessThan(1e-6);
  });

  it("the ONNX streaming block runs: step after step, ONNX Runtime fed back its states predicts what the stateful model does", async () => {
    const block = readme.split("## Models that travel")[1]!.split("\n## ")[0]!;
    const nth = block.split("```ts").findIndex((b) => b.split("```")[0]!.includes("{ states: true }"));
    expect(nth).toBeGreaterThan(1);
    const logs = await runBlock("## Models that travel", "onnx-states", nth) as [number, number][];
    expect(logs).toHaveLength(3);
    for (const [ort, ours] of logs) expect(Math.abs(ort - ours)).toBeLessThan(1e-6);
    expect(new Set(logs.map(([, ours]) => ours)).size).toBe(3); // three steps, three predictions
  });
});
