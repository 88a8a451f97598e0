/**
 * Memory in steady state: 1,000 training steps (S1 by default) must leave the heap flat.
 *
 * Prints the heap used after a full GC before and after the steps (flat means no per-step growth, i.e.
 * nothing retained), the bytes allocated per step (short-lived garbage: measured over steps that saw no
 * GC), and, from V8's sampling heap profiler, the functions those allocations come from.
 *
 * Run: `npm run bench -- heap` or `npx tsx bench/heap.ts [S0|S1|S2] [--steps N]` (both re-run under
 * `node --expose-gc`; in-process under tsx: `node --expose-gc --import tsx bench/heap.ts --in-process`).
 */
import { Session } from "node:inspector";
import {
  type Options, shape, shapeLabel, SHAPES, standalone,
} from "./harness.js";
import { makeStepModel } from "./train-step.js";

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

function post<T>(session: Session, method: string, params: object = {}): Promise<T> {
  return new Promise((res, rej) => session.post(method, params, (err, out) => (err ? rej(err) : res(out as T))));
}

function gc(): boolean {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) return false;
  g();
  g();
  return true;
}

export async function runHeap(opts: Options, extra: Record<string, unknown>): Promise<void> {
  const sn = opts.filters.find((f) => SHAPES.some((s) => s.name === f)) ?? "S1";
  const s = shape(sn);
  const si = opts.rest.indexOf("--steps");
  const steps = si >= 0 ? Math.max(4, Math.round(Number(opts.rest[si + 1]) / 4) * 4) : opts.quick ? 200 : 1000;
  console.log(`\n## heap: ${steps} steady-state training steps at ${shapeLabel(s)} (float64)`);
  const m = makeStepModel(s, "float64");
  // Buffers are allocated by the first step; the first thousand or so also leave compiled code and type
  // feedback behind (~130 KiB, once). Steady state starts after that.
  for (let i = 0; i < 2000; i++) m.model.trainOnBatch(m.x, m.y);
  const hasGc = gc();
  if (!hasGc) console.log("  (no global.gc: run under node --expose-gc for the before/after figures)");
  const before = process.memoryUsage().heapUsed;
  const marks: number[] = [];

  // Bytes allocated per step: heap growth over steps during which no GC ran (the heap did not shrink).
  let grown = 0, counted = 0;
  let last = process.memoryUsage().heapUsed;
  for (let i = 1; i <= steps; i++) {
    m.model.trainOnBatch(m.x, m.y);
    const now = process.memoryUsage().heapUsed;
    if (now >= last) { grown += now - last; counted++; }
    if (i % (steps / 4) === 0 && gc()) { marks.push(process.memoryUsage().heapUsed); last = process.memoryUsage().heapUsed; }
    else last = now;
  }
  gc();
  const after = process.memoryUsage().heapUsed;
  const perStep = counted ? grown / counted : NaN;
  const kib = (b: number): string => `${(b / 1024).toFixed(1)} KiB`;
  console.log(`  heap used after GC: before ${kib(before)}, after ${steps} steps ${kib(after)} ` +
    `(${after - before >= 0 ? "+" : ""}${kib(after - before)}${hasGc ? "" : ", without a forced GC"})`);
  if (marks.length) console.log(`  after each quarter: ${marks.map(kib).join(", ")}`);
  console.log(`  allocated per step (short-lived, collected by the next scavenge): ~${perStep.toFixed(0)} bytes (over ${counted} GC-free steps)`);
  // memoryUsage() itself allocates a little: measure that floor the same way.
  let floor = 0, fc = 0;
  last = process.memoryUsage().heapUsed;
  for (let i = 0; i < 200; i++) {
    const now = process.memoryUsage().heapUsed;
    if (now >= last) { floor += now - last; fc++; }
    last = now;
  }
  console.log(`  (the measurement's own floor: ~${(floor / Math.max(fc, 1)).toFixed(0)} bytes per reading)`);

  // Where: V8's sampling heap profiler over the same kind of steps, counting objects already collected.
  const session = new Session();
  session.connect();
  await post(session, "HeapProfiler.startSampling", { samplingInterval: 64, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  for (let i = 0; i < steps; i++) m.model.trainOnBatch(m.x, m.y);
  const { profile } = await post<{ profile: { head: ProfileNode } }>(session, "HeapProfiler.stopSampling");
  session.disconnect();
  const sites = new Map<string, number>();
  const walk = (n: ProfileNode): void => {
    if (n.selfSize > 0) {
      const f = n.callFrame;
      const key = `${f.functionName || "(anonymous)"} ${f.url.split("/").pop()}:${f.lineNumber + 1}`;
      sites.set(key, (sites.get(key) ?? 0) + n.selfSize);
    }
    n.children.forEach(walk);
  };
  walk(profile.head);
  const top = [...sites.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
  console.log(`  allocation sites (sampled bytes per step):`);
  for (const [k, v] of top) console.log(`    ${(v / steps).toFixed(0).padStart(7)}  ${k}`);
  extra.heap = {
    shape: s.name, steps, beforeBytes: before, afterBytes: after, quarterBytes: marks, growthBytes: after - before, allocatedPerStepBytes: perStep,
    sites: Object.fromEntries(top.map(([k, v]) => [k, v / steps])),
  };
}

await standalone("heap", import.meta.url, async (opts) => {
  const extra: Record<string, unknown> = {};
  await runHeap(opts, extra);
  return extra;
});
