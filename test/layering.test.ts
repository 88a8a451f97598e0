/**
 * The house the sources are built as: imports only go down, from the Node adapters to the entry, the
 * trainers and I/O, the Keras facade, the engine, the layers and the tensor core. Every file of src/ has a
 * level below; a file may import files of its own level or lower, never higher, and no import (counting
 * `import type`) closes a circle. And the root entry reaches nothing of Node.
 */
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const src = fileURLToPath(new URL("../src/", import.meta.url));

/** Levels, bottom up. A new file must be placed here. */
const LEVELS: [number, RegExp][] = [
  [0, /^(errors|bytes)\.ts$|^tensor\/|^types\/|^wasm\//],
  [1, /^(init|losses|optimizers|optimizers-extra|schedules|data|random|atomic-update|run-options)\.ts$/],
  [2, /^layers\//],
  [3, /^(engine(-api|-core)?|dropout-masks)\.ts$/],
  [4, /^(validate|callbacks|progress|fit|checkpoint-json|model-states|summary|tbptt-rows)\.ts$/],
  [5, /^model\.ts$/],
  [6, /^(tbptt|gradcheck|checkpoint)\.ts$|^threads\/|^interop\//],
  [7, /^index\.ts$/],
  [8, /^(node|web)\//],
];

const files = readdirSync(src, { recursive: true }).map((f) => String(f).replaceAll("\\", "/"))
  .filter((f) => /\.(ts|mjs)$/.test(f) && !f.endsWith(".d.ts"));

function level(f: string): number {
  const hit = LEVELS.find(([, re]) => re.test(f));
  if (!hit) throw new Error(`src/${f} has no level in test/layering.test.ts`);
  return hit[0];
}

interface Edge { to: string; type: boolean }

/** The relative imports and re-exports of a file (resolved to src-relative paths), and its bare ones. */
function importsOf(f: string): { local: Edge[]; bare: string[] } {
  const text = readFileSync(join(src, f), "utf8");
  const local: Edge[] = [], bare: string[] = [];
  const re = /^\s*(?:import|export)\s+(type\s+)?(?:[^'"]*?\sfrom\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm;
  for (const m of text.matchAll(re)) {
    const spec = m[2] ?? m[3]!;
    if (!spec.startsWith(".")) { bare.push(spec); continue; }
    const to = relative(src, normalize(join(src, dirname(f), spec))).replaceAll("\\", "/").replace(/\.js$/, ".ts");
    const typeOnly = Boolean(m[1]) || /^\s*(?:import|export)\s*\{\s*(?:type\s+\w+\s*(?:as\s+\w+\s*)?,?\s*)+\}\s*from/.test(m[0]);
    local.push({ to: files.includes(to) ? to : to.replace(/\.ts$/, ".mjs"), type: typeOnly });
  }
  return { local, bare };
}

const graph = new Map(files.map((f) => [f, importsOf(f)]));

describe("imports flow one way", () => {
  it("every file has a level, and imports only files of its level or below", () => {
    const up: string[] = [];
    for (const [f, { local }] of graph) {
      for (const e of local) {
        expect(files, `src/${f} imports a missing src/${e.to}`).toContain(e.to);
        if (level(e.to) > level(f)) up.push(`src/${f} (level ${level(f)}) imports src/${e.to} (level ${level(e.to)})`);
      }
    }
    expect(up).toEqual([]);
  });

  it("no import circle, counting type-only imports", () => {
    const state = new Map<string, "open" | "done">();
    const cycles: string[] = [];
    const visit = (f: string, path: string[]): void => {
      if (state.get(f) === "done") return;
      if (state.get(f) === "open") { cycles.push([...path.slice(path.indexOf(f)), f].join(" → ")); return; }
      state.set(f, "open");
      for (const e of graph.get(f)!.local) visit(e.to, [...path, f]);
      state.set(f, "done");
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });

  it("the root entry reaches no Node module and nothing of src/node", () => {
    const seen = new Set<string>();
    const nodeUses: string[] = [];
    const walk = (f: string): void => {
      if (seen.has(f)) return;
      seen.add(f);
      const { local, bare } = graph.get(f)!;
      for (const b of bare) if (b.startsWith("node:") || ["fs", "path", "os", "crypto", "worker_threads", "child_process", "url", "util"].includes(b)) nodeUses.push(`src/${f} imports ${b}`);
      for (const e of local) walk(e.to);
    };
    walk("index.ts");
    expect([...seen].filter((f) => f.startsWith("node/"))).toEqual([]);
    expect(nodeUses).toEqual([]);
    expect(seen.size).toBeGreaterThan(20);
    // ...while longshort/node does reach them (the walk can see a Node import when there is one).
    seen.clear();
    walk("node/index.ts");
    expect(nodeUses.length).toBeGreaterThan(0);
  });
});
