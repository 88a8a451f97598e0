#!/usr/bin/env node
// Builds the playground into playground/dist/: index.html and playground.js, one classic script (IIFE)
// bundled by esbuild from playground/main.ts and the library's sources, for the page and its worker alike.
// Used by playground/serve.mjs (`npm run playground`) and test/playground.test.ts.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const here = dirname(fileURLToPath(import.meta.url));
export const distDir = join(here, "dist");

/** Builds playground/dist/; returns the bundle's size in bytes and the bundled input files. */
export async function buildPlayground({ minify = false } = {}) {
  rmSync(distDir, { recursive: true, force: true });
  mkdirSync(distDir, { recursive: true });
  const result = await build({
    entryPoints: [join(here, "main.ts")], outfile: join(distDir, "playground.js"), bundle: true,
    platform: "browser", format: "iife", target: "es2022", minify, sourcemap: false, metafile: true, logLevel: "warning",
    banner: { js: "// longshort playground (built by playground/build.mjs from the repository's sources)" },
  });
  copyFileSync(join(here, "index.html"), join(distDir, "index.html"));
  const out = Object.values(result.metafile.outputs)[0];
  return { bytes: out.bytes, inputs: Object.keys(result.metafile.inputs) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { bytes } = await buildPlayground();
  console.log(`built ${join(distDir, "playground.js")} (${(bytes / 1024).toFixed(0)} KiB) and index.html`);
}
