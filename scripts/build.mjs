#!/usr/bin/env node
// Builds dist/ from src/, one source for both module systems:
//   dist/esm  tsc's output: ES modules, .d.ts and source maps (the package's "import" condition);
//   dist/cjs  the same modules converted to CommonJS by esbuild, file for file, with the same .d.ts
//             (its package.json says "type": "commonjs", so TypeScript reads them as CommonJS types);
//   dist/web/worker.js  the Web Workers' script (src/web/worker.ts) bundled with all it needs into one
//             classic-worker file, for pages to serve (longshort/web's setThreads).
// Run by `npm run build`, and by `prepare`, so `npm pack` and `npm install <git url or folder>` always
// ship dist/.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist"), esm = join(dist, "esm"), cjs = join(dist, "cjs");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");

// `npm install <folder>` runs this in the folder without installing its dev dependencies: say so plainly.
let transformSync, buildSync;
try {
  if (!existsSync(tsc)) throw new Error("typescript is not installed");
  ({ transformSync, buildSync } = await import("esbuild"));
} catch (e) {
  console.error(
    `longshort: building dist/ needs the dev dependencies (typescript, esbuild), which are not installed in ${root} ` +
    `(${e.message}). Run \`npm ci\` there first, then install it again; or install from a tarball or a git URL, ` +
    `for which npm installs them itself.`,
  );
  process.exit(1);
}

rmSync(dist, { recursive: true, force: true });
// The portable core must type-check without Node's types (no process, Buffer, node:*), then everything
// is compiled with them (src/node needs them).
execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.core.json")], { stdio: "inherit" });
execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });

const files = readdirSync(esm, { recursive: true }).map(String);
for (const f of files) {
  const from = join(esm, f), to = join(cjs, f);
  if (f.endsWith(".d.ts")) {
    mkdirSync(dirname(to), { recursive: true });
    copyFileSync(from, to);
  } else if (f.endsWith(".js")) {
    const source = readFileSync(from, "utf8").replace(/\n\/\/# sourceMappingURL=.*\n?$/, "\n");
    // import.meta does not exist in CommonJS: esbuild empties it, and the one module that names it
    // (node/threads.ts) reads __filename first there.
    const out = transformSync(source, {
      format: "cjs", platform: "node", target: "node20", sourcefile: relative(root, from),
      logOverride: { "empty-import-meta": "silent" },
    });
    mkdirSync(dirname(to), { recursive: true });
    writeFileSync(to, out.code);
  }
}
writeFileSync(join(cjs, "package.json"), `${JSON.stringify({ type: "commonjs" }, null, 2)}\n`);
buildSync({
  entryPoints: [join(esm, "web", "worker.js")], outfile: join(dist, "web", "worker.js"), bundle: true,
  platform: "browser", format: "iife", target: "es2022", logLevel: "warning",
  banner: { js: "// longshort's Web Worker script: serve it with your page and pass its URL to setThreads of longshort/web." },
});
console.log(`built dist/esm and dist/cjs (${files.filter((f) => f.endsWith(".js")).length} modules each)`);
