/**
 * The package as a user gets it, not the sources: `npm pack` (its `prepare` builds dist/), the tarball
 * installed into an empty project in a temporary directory, and then
 * - `import` from an ES module and `require` from CommonJS, of both entries (`longshort`, `longshort/node`),
 *   training, checkpoint files and worker threads (started from the installed dist/);
 * - `tsc --strict` on a TypeScript file of each module system that uses the public API, with no
 *   @types/node and no DOM library: the shipped .d.ts stand on their own;
 * - an app importing `longshort` bundled by esbuild for the browser (platform "browser", no externals):
 *   no Node built-in may be needed (and `longshort/node` must fail, which shows the check can fail);
 * - that bundle loaded in a real headless Chromium (Debian's `chromium`, driven by playwright-core, no
 *   browser download): the README's quick start trained there must give exactly Node's bits (weights,
 *   losses, predictions) for the same seed, with no console errors; in an isolated page, a model with `fma: true`
 *   (Chromium's relaxed SIMD) trains to the bits of Node started with relaxed SIMD, on the same machine.
 *
 * Chromium: $LONGSHORT_CHROMIUM or /usr/bin/chromium (`.ci/run` installs Debian's package when missing).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build, transformSync } from "esbuild";
import { chromium } from "playwright-core";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(repo, "node_modules", "typescript", "bin", "tsc");
const work = mkdtempSync(join(tmpdir(), "longshort-package-"));
const app = join(work, "app"); // the user's project
afterAll(() => rmSync(work, { recursive: true, force: true }));

function run(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 180_000 });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} failed in ${cwd}:\n${err.stdout ?? ""}\n${err.stderr ?? ""}\n${err.message}`);
  }
}

const npm = (args: string[], cwd: string): string => run(process.platform === "win32" ? "npm.cmd" : "npm", args, cwd);
const node = (file: string): string => run(process.execPath, [file], app);

let tarball = "";
beforeAll(() => {
  // Nothing of the repo's dist/ may leak in: pack builds it afresh.
  rmSync(join(repo, "dist"), { recursive: true, force: true });
  const out = npm(["pack", "--json", "--pack-destination", work], repo);
  tarball = join(work, (JSON.parse(out.slice(out.indexOf("["))) as { filename: string }[])[0]!.filename);
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "longshort-user", version: "1.0.0", private: true }));
  npm(["install", "--no-audit", "--no-fund", "--prefer-offline", tarball], app);
}, 240_000);

describe("the packed package", () => {
  it("ships dist/ for both module systems, the sources, LICENSE and README, and nothing of the repo's tooling", () => {
    const files = run("tar", ["tzf", tarball], work).trim().split("\n").map((f) => f.replace(/^package\//, ""));
    for (const f of [
      "dist/esm/index.js", "dist/esm/index.d.ts", "dist/esm/node/index.js", "dist/esm/node/worker.js",
      "dist/cjs/index.js", "dist/cjs/index.d.ts", "dist/cjs/node/index.js", "dist/cjs/node/worker.js", "dist/cjs/package.json",
      "dist/esm/web/index.js", "dist/cjs/web/index.d.ts", "dist/web/worker.js",
      "src/index.ts", "LICENSE", "README.md", "package.json",
    ]) expect(files, f).toContain(f);
    expect(files.filter((f) => /^(test|bench|examples|scripts|\.ci)\//.test(f))).toEqual([]);
    const license = readFileSync(join(app, "node_modules", "longshort", "LICENSE"), "utf8");
    const pkg = JSON.parse(readFileSync(join(app, "node_modules", "longshort", "package.json"), "utf8"));
    expect(pkg.license).toBe("MIT");
    expect(license).toMatch(/^MIT License/);
  });
});

/** What the Node scripts below print: the quick start's results and what the Node-only parts did. */
interface NodeRun {
  accuracy: number;
  predictions: number[];
  reloadedEqual: boolean;
  threads: number;
  parallelCalls: number;
  twoThreadLoss: number;
  oneThreadLoss: number;
  /** Byte lengths of the safetensors and ONNX exports, and whether the safetensors round trip predicts the same. */
  interop: [number, number, boolean];
}

const QUICK = `
const x = tensor([[[1], [0], [0]], [[0], [0], [0]], [[1], [0], [0]], [[0], [0], [0]]]);
const y = tensor([[1], [0], [1], [0]]);
const make = () => {
  const m = new Sequential([new LSTM({ units: 8, inputDim: 1 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 1 });
  m.compile({ optimizer: new Adam({ learningRate: 0.05 }), loss: "binaryCrossentropy", metrics: ["accuracy"] });
  return m;
};
const report = async (saveSync, loadSync, setThreads, file) => {
  const model = make();
  const history = await model.fit(x, y, { epochs: 60, batchSize: 4, verbose: 0 });
  saveSync(model, file);
  const back = loadSync(file);
  const big = tensor(Array.from({ length: 64 }, (_, i) => [[i % 2], [0], [(i >> 1) % 2]]));
  const bigY = tensor(Array.from({ length: 64 }, (_, i) => [i % 2]));
  const one = make(), two = make();
  setThreads(two, 2, { minFlops: 0 });
  const oneThreadLoss = one.trainOnBatch(big, bigY).loss, twoThreadLoss = two.trainOnBatch(big, bigY).loss;
  const out = {
    accuracy: history.history.accuracy.at(-1), predictions: Array.from(model.predict(x).data),
    reloadedEqual: Array.from(back.predict(x).data).join() === Array.from(model.predict(x).data).join(),
    threads: two.threads, parallelCalls: two.engine.executor.parallelCalls, oneThreadLoss, twoThreadLoss,
    interop: [toSafetensors(model).length, toOnnx(model).length,
      Array.from(fromSafetensors(toSafetensors(model)).predict(x).data).join() === Array.from(model.predict(x).data).join()],
  };
  two.dispose();
  console.log(JSON.stringify(out));
};
`;

/** What each module system's script printed, for the comparison of the two. */
const printed: Partial<Record<"esm" | "cjs", NodeRun>> = {};

function expectNodeRun(system: "esm" | "cjs", text: string): void {
  const r = JSON.parse(text.trim().split("\n").at(-1)!) as NodeRun;
  printed[system] = r;
  expect(r.accuracy).toBe(1);
  expect(r.predictions.map((p) => (p > 0.5 ? 1 : 0))).toEqual([1, 0, 1, 0]);
  expect(r.reloadedEqual).toBe(true);
  expect(r.threads).toBe(2);
  expect(r.parallelCalls).toBe(1); // the step ran split, on a worker started from the installed dist/
  expect(Math.abs(r.twoThreadLoss - r.oneThreadLoss)).toBeLessThanOrEqual(1e-12 * Math.abs(r.oneThreadLoss));
  expect(r.interop[0]).toBeGreaterThan(1000);
  expect(r.interop[1]).toBeGreaterThan(1000);
  expect(r.interop[2]).toBe(true);
}

describe("both module systems, from the installed package", () => {
  it("import (ES module): longshort and longshort/node — training, checkpoint files, worker threads", () => {
    writeFileSync(join(app, "esm.mjs"), `
import { Sequential, LSTM, Dense, Adam, tensor, toSafetensors, fromSafetensors, toOnnx } from "longshort";
import { saveCheckpointSync, loadCheckpointSync, setThreads, Sequential as NodeSequential } from "longshort/node";
if (NodeSequential !== Sequential) throw new Error("longshort/node must re-export the same classes");
${QUICK}
await report(saveCheckpointSync, loadCheckpointSync, setThreads, "esm.ckpt");
`);
    expectNodeRun("esm", node("esm.mjs"));
  });

  it("require (CommonJS): longshort and longshort/node — the same", () => {
    writeFileSync(join(app, "cjs.cjs"), `
const { Sequential, LSTM, Dense, Adam, tensor, toSafetensors, fromSafetensors, toOnnx } = require("longshort");
const { saveCheckpointSync, loadCheckpointSync, setThreads, Sequential: NodeSequential } = require("longshort/node");
if (NodeSequential !== Sequential) throw new Error("longshort/node must re-export the same classes");
${QUICK}
report(saveCheckpointSync, loadCheckpointSync, setThreads, "cjs.ckpt");
`);
    expectNodeRun("cjs", node("cjs.cjs"));
  });

  it("the two module systems are two copies of one source: same results bit for bit", () => {
    expect(printed.esm && printed.cjs, "the two tests above must run first").toBeTruthy();
    expect(printed.cjs!.predictions).toEqual(printed.esm!.predictions);
  });

  it("a model of one copy given to the other (import and require in one program): the error says two copies are loaded", () => {
    writeFileSync(join(app, "mixed.mjs"), `
import { createRequire } from "node:module";
import { Sequential, LSTM, Dense, checkpointToJSON } from "longshort";
const cjs = createRequire(import.meta.url)("longshort");
const model = new cjs.Sequential([new cjs.LSTM({ units: 2, inputDim: 1 }), new cjs.Dense({ units: 1 })]);
const messages = [];
for (const f of [() => checkpointToJSON(model), () => new Sequential([new cjs.LSTM({ units: 2, inputDim: 1 }), new Dense({ units: 1 })])]) {
  try { f(); messages.push("accepted"); } catch (e) { messages.push(e.message); }
}
console.log(JSON.stringify(messages));
`);
    const [ckpt, layers] = JSON.parse(node("mixed.mjs").trim().split("\n").at(-1)!) as [string, string];
    expect(ckpt).toMatch(/^checkpointToJSON model: expected a Sequential, got an object \(Sequential\) from another copy of longshort: this program has loaded the package twice \(with both import and require/);
    expect(layers).toMatch(/^Sequential layers\[0\]: expected an LSTM, .* got an object \(LSTM\) from another copy of longshort.*load longshort one way throughout/);
  });
});

describe("types, without @types/node and without the DOM library", () => {
  const use = (from: "import" | "require") => `
${from === "import"
    ? `import { Sequential, LSTM, Dense, Adam, tensor, TruncatedBPTT, encodeCheckpoint, decodeCheckpoint, toSafetensors, fromSafetensors, toTfjs, fromTfjs, toOnnx, Masking, ExponentialDecay, randomNormal, type Callback, type Tensor } from "longshort";
import { saveCheckpoint, setThreads, saveTfjs, loadSafetensors } from "longshort/node";
import { setThreads as setWebThreads } from "longshort/web";`
    : `import longshort = require("longshort");
import nodeOnly = require("longshort/node");
import webOnly = require("longshort/web");
const { Sequential, LSTM, Dense, Adam, tensor, TruncatedBPTT, encodeCheckpoint, decodeCheckpoint, toSafetensors, fromSafetensors, toTfjs, fromTfjs, toOnnx, Masking, ExponentialDecay, randomNormal } = longshort;
const { saveCheckpoint, setThreads, saveTfjs, loadSafetensors } = nodeOnly;
const setWebThreads = webOnly.setThreads;
type Callback = longshort.Callback;
type Tensor = longshort.Tensor;`}
const model = new Sequential([new LSTM({ units: 4, inputDim: 1, returnSequences: false }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 1 });
model.compile({ optimizer: new Adam({ learningRate: 0.05 }), loss: "binaryCrossentropy", metrics: ["accuracy"] });
const x: Tensor = tensor([[[1], [0]], [[0], [0]]]);
const cb: Callback = { onEpochEnd(epoch, logs, m) { m.resetStates(); void epoch; void logs.loss; } };
async function main(): Promise<number> {
  const h = await model.fit(x, [[1], [0]], { epochs: 2, callbacks: [cb], verbose: 1, log: (line: string) => void line });
  const bytes: Uint8Array = encodeCheckpoint(model);
  const copy = decodeCheckpoint(bytes);
  new TruncatedBPTT(copy, { windowLength: 1 }).trainSequence(x, [[1], [0]]);
  setThreads(copy, 2);
  const webThreads: number = await setWebThreads(copy, 2, { workerUrl: "longshort-worker.js", minFlops: 1e6 });
  await saveCheckpoint(copy, "m.ckpt");
  const st: Uint8Array = toSafetensors(copy);
  const back = fromSafetensors(st, await loadSafetensors("m.safetensors"));
  const artifacts = toTfjs(new Sequential([new LSTM({ units: 2, inputDim: 1, recurrentActivation: "hardSigmoid", useBias: false }), new Dense({ units: 1, useBias: false })]));
  const wd: ArrayBuffer = artifacts.weightData;
  const onnx: Uint8Array = toOnnx(fromTfjs(artifacts, { dtype: "float64" }));
  await saveTfjs(back, "tfjs-model");
  const classes = new Sequential([new Masking({ maskValue: 0 }), new LSTM({ units: 3, inputDim: 2, dropout: 0.1 }), new Dense({ units: 4, activation: "softmax" })]);
  classes.compile({ optimizer: new Adam({ learningRate: new ExponentialDecay({ initialLearningRate: 0.01, decaySteps: 10, decayRate: 0.9 }) }), loss: "sparse_categorical_crossentropy" });
  const step = classes.trainOnBatch(randomNormal([2, 3, 2], { seed: 1 }), [1, 3]);
  const loss: number = h.history.loss[0]! + wd.byteLength + onnx.length + step.loss;
  return loss + copy.predict(x).data[0]! + webThreads;
}
void main;
// @ts-expect-error: a wrong option must not type-check
new LSTM({ units: 4, returnSequence: true });
// @ts-expect-error: nor an activation the engine does not compute
new LSTM({ units: 4, recurrentActivation: "hard_sigmoid" });
`;

  for (const from of ["import", "require"] as const) {
    it(`tsc --strict (module nodenext, types: [], lib ES2022) accepts a ${from === "import" ? "ES module" : "CommonJS"} file using the public API`, () => {
      const dir = join(app, `types-${from}`);
      mkdirSync(dir, { recursive: true });
      const file = from === "import" ? "use.mts" : "use.cts";
      writeFileSync(join(dir, file), use(from));
      writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({
        compilerOptions: {
          strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext", target: "ES2022",
          lib: ["ES2022"], types: [], skipLibCheck: false,
        },
        files: [file],
      }));
      expect(existsSync(join(app, "node_modules", "@types"))).toBe(false);
      run(process.execPath, [tsc, "-p", dir], dir); // throws with tsc's messages on any error
    });
  }

  it("the type check fails on a misuse (it is checking)", () => {
    const dir = join(app, "types-import");
    writeFileSync(join(dir, "use.mts"), `import { LSTM } from "longshort";\nnew LSTM({ units: "four" });\n`);
    expect(() => run(process.execPath, [tsc, "-p", dir], dir)).toThrow(/Type 'string' is not assignable to type 'number'/);
  });
});

/** The README's quick start (TypeScript, stripped to JavaScript), wrapped so that it reports its model's bits. */
function quickstartModule(): string {
  const readme = readFileSync(join(repo, "README.md"), "utf8");
  const block = readme.split("## Quick start")[1]!.split("```ts")[1]!.split("```")[0]!;
  const lines = block.trim().split("\n");
  const imports = lines.filter((l) => l.startsWith("import "));
  const body = lines.filter((l) => !l.startsWith("import ")).join("\n");
  return transformSync(`${imports.join("\n")}
import { toSafetensors, fromSafetensors, toTfjs, fromTfjs, toOnnx, encodeCheckpoint } from "longshort";
const hex = (a) => Array.from(new Uint8Array(new Float64Array(a).buffer), (b) => b.toString(16).padStart(2, "0")).join("");
const hexBytes = (u) => Array.from(u, (b) => b.toString(16).padStart(2, "0")).join("");
export async function quickstart() {
  const logged = [];
  const console = { log: (...args) => logged.push(args.length) };
${body}
  return {
    logged: logged.length,
    weights: model.getWeights().map((w) => hex(w.data)),
    losses: hex(history.history.loss),
    predictions: hex(model.predict(x).data),
    // The trained model out through every format, and back in through the importers (in a page too).
    files: [toSafetensors(model), toOnnx(model), new Uint8Array(toTfjs(model).weightData), encodeCheckpoint(model)].map(hexBytes),
    reimported: [fromSafetensors(toSafetensors(model)), fromTfjs(toTfjs(model))].map((m) => hex(m.predict(x).data)),
  };
}
`, { loader: "ts", format: "esm" }).code;
}

const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/**
 * Serves www/ on 127.0.0.1: `/name` plainly, `/iso/name` with the headers that make a page
 * cross-origin isolated (COOP same-origin, COEP require-corp), which shared memory needs.
 */
async function serve(www: string): Promise<{ server: Server; origin: string }> {
  const types: Record<string, string> = { ".html": "text/html", ".js": "text/javascript" };
  const server = createServer((req, res) => {
    let name = (req.url ?? "/").split("?")[0]!.slice(1);
    const isolated = name.startsWith("iso/");
    if (isolated) name = name.slice(4);
    if (name === "") name = "index.html";
    if (!readdirSync(www).includes(name)) { res.writeHead(404).end(); return; }
    const headers: Record<string, string> = { "content-type": types[name.slice(name.lastIndexOf("."))] ?? "application/octet-stream" };
    if (isolated) Object.assign(headers, { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" });
    res.writeHead(200, headers).end(readFileSync(join(www, name)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}

describe("in the browser", () => {
  const www = join(work, "www");
  let bundle = "";
  let server: Server | null = null;
  let origin = "";
  let browser: Awaited<ReturnType<typeof chromium.launch>> | null = null;
  afterAll(async () => { await browser?.close(); server?.close(); });

  /** Chromium with a fresh page on `path`, collecting console errors, page errors and failed requests. */
  async function open(path: string): Promise<{ page: import("playwright-core").Page; problems: string[] }> {
    if (!browser) {
      const executablePath = process.env.LONGSHORT_CHROMIUM ?? "/usr/bin/chromium";
      if (!existsSync(executablePath)) {
        throw new Error(`no Chromium at ${executablePath}: install Debian's chromium (apt-get install chromium; .ci/run does) or set LONGSHORT_CHROMIUM`);
      }
      browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
      ({ server, origin } = await serve(www));
    }
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on("console", (msg) => { if (msg.type() === "error" || msg.type() === "warning") problems.push(`console.${msg.type()}: ${msg.text()}`); });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));
    await page.goto(`${origin}/${path}`);
    return { page, problems };
  }

  it("an app importing longshort bundles for the browser with no Node built-in", async () => {
    writeFileSync(join(app, "quickstart.mjs"), quickstartModule());
    writeFileSync(join(app, "page.mjs"), `import { quickstart } from "./quickstart.mjs";\nwindow.longshortQuickstart = quickstart;\n`);
    const result = await build({
      entryPoints: [join(app, "page.mjs")], bundle: true, platform: "browser", format: "esm", write: false,
      metafile: true, logLevel: "silent", absWorkingDir: app, outfile: join(www, "page.js"),
    });
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const nodeImports: string[] = [], disabled: string[] = [];
    for (const [input, info] of Object.entries(result.metafile.inputs)) {
      expect(input.startsWith("node:") || builtins.has(input), input).toBe(false);
      for (const imp of info.imports) {
        if (imp.external || builtins.has(imp.path) || builtins.has(imp.original ?? "")) {
          if (imp.path.startsWith("(disabled):")) disabled.push(`${input} → ${imp.original}`);
          else nodeImports.push(`${input} → ${imp.original ?? imp.path}`);
        }
      }
    }
    expect(nodeImports).toEqual([]);
    // The one exception is seedrandom's own: its package.json maps require("crypto") (autoseeding, which
    // longshort never uses: every generator is seeded) to nothing in browsers.
    expect(disabled).toEqual(["node_modules/seedrandom/seedrandom.js → crypto"]);
    bundle = result.outputFiles[0]!.text;
    expect(bundle.length).toBeGreaterThan(10_000);
    mkdirSync(www, { recursive: true });
    writeFileSync(join(www, "page.js"), bundle);
    writeFileSync(join(www, "index.html"), `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>longshort</title>
<link rel="icon" href="data:,"><script type="module" src="page.js"></script></head><body><p>longshort quick start</p></body></html>`);
    console.log(`browser bundle of the quick start: ${(bundle.length / 1024).toFixed(0)} KiB unminified, ${Object.keys(result.metafile.inputs).length} modules`);
  });

  it("bundling longshort/node for the browser fails on its Node built-ins (the check above can fail)", async () => {
    writeFileSync(join(app, "node-page.mjs"), `import { saveCheckpoint } from "longshort/node";\nconsole.log(saveCheckpoint);\n`);
    const err = await build({ entryPoints: [join(app, "node-page.mjs")], bundle: true, platform: "browser", write: false, logLevel: "silent", absWorkingDir: app })
      .then(() => null, (e: { errors: { text: string }[] }) => e.errors.map((x) => x.text).join("\n"));
    expect(err).toMatch(/Could not resolve "node:fs"/);
    expect(err).toMatch(/Could not resolve "node:worker_threads"/);
  });

  it("Chromium trains the README's quick start to exactly Node's bits, with no console errors", async () => {
    expect(bundle, "the bundle test above must pass first").not.toBe("");
    // Node's bits, from the same module and the installed package.
    writeFileSync(join(app, "quickstart-node.mjs"), `import { quickstart } from "./quickstart.mjs";\nconsole.log(JSON.stringify(await quickstart()));\n`);
    const inNode = JSON.parse(node("quickstart-node.mjs").trim());
    expect(inNode.logged).toBe(1);
    const { page, problems } = await open("");
    await page.waitForFunction(() => typeof (globalThis as unknown as { longshortQuickstart?: unknown }).longshortQuickstart === "function");
    const inBrowser = await page.evaluate(() => (globalThis as unknown as { longshortQuickstart: () => Promise<unknown> }).longshortQuickstart());
    const version = browser!.version();
    expect(problems).toEqual([]);
    expect(inBrowser, `Chromium ${version} vs Node ${process.version}`).toEqual(inNode);
    expect(inNode.reimported[0]).toBe(inNode.predictions); // safetensors in float64: exact
    console.log(`Chromium ${version}: the quick start's weights, 60 losses and predictions, and its safetensors, ONNX, tfjs and checkpoint bytes (${inNode.files.map((f: string) => f.length / 2).join(", ")} B) equal Node ${process.version}'s bit for bit`);
    await page.close();
  }, 120_000);

  it("Chromium fuses (fma: true, its relaxed SIMD) on the SIMD backend of an isolated page: the same bits as Node with relaxed SIMD, and off, as Node without", async () => {
    // One module, run in the page and in Node: a float32 and a float64 model, each with fma off and on, trained five steps.
    writeFileSync(join(app, "fma.mjs"), `
import { Sequential, LSTM, Dense, Adam, tensor } from "longshort";
const hex = (a) => Array.from(new Uint8Array(new Float64Array(a).buffer), (b) => b.toString(16).padStart(2, "0")).join("");
export function fmaRun() {
  let s = 11;
  const next = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const xs = Array.from({ length: 16 }, () => Array.from({ length: 7 }, () => [next() - 0.5, next() - 0.5, next() - 0.5]));
  const ys = Array.from({ length: 16 }, () => [next() < 0.5 ? 0 : 1]);
  const runs = [];
  for (const dtype of ["float32", "float64"]) {
    for (const fma of [false, true]) {
      const m = new Sequential([new LSTM({ units: 8, inputDim: 3 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 5, dtype, fma });
      m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: "binaryCrossentropy" });
      const x = tensor(xs, dtype), y = tensor(ys, dtype), losses = [];
      for (let k = 0; k < 5; k++) losses.push(m.trainOnBatch(x, y).loss);
      runs.push({ dtype, backend: m.backend, fma: m.fma, losses, lossBits: hex(losses), weights: m.getWeights().map((w) => hex(w.data)).join(""), predictions: hex(m.predict(x).data) });
      m.dispose();
    }
  }
  return runs;
}
`);
    writeFileSync(join(app, "fma-page.mjs"), `import { fmaRun } from "./fma.mjs";\nwindow.fmaRun = fmaRun;\n`);
    writeFileSync(join(app, "fma-node.mjs"), `import { fmaRun } from "./fma.mjs";\nconsole.log(JSON.stringify(fmaRun()));\n`);
    await build({ entryPoints: [join(app, "fma-page.mjs")], bundle: true, platform: "browser", format: "esm", outfile: join(www, "fma-page.js"), logLevel: "silent", absWorkingDir: app });
    writeFileSync(join(www, "fma.html"), `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>fma</title>
<link rel="icon" href="data:,"><script type="module" src="fma-page.js"></script></head><body></body></html>`);
    type FmaRun = { dtype: string; backend: string; fma: boolean; losses: number[]; lossBits: string; weights: string; predictions: string };
    // Node 20 has relaxed SIMD behind a flag (Node 22+ and Chrome 114+ ship it).
    const inNode = JSON.parse(run(process.execPath, ["--experimental-wasm-relaxed-simd", "fma-node.mjs"], app).trim()) as FmaRun[];
    const { page, problems } = await open("iso/fma.html");
    await page.waitForFunction(() => typeof (globalThis as unknown as { fmaRun?: unknown }).fmaRun === "function");
    const inBrowser = await page.evaluate(() => (globalThis as unknown as { fmaRun: () => FmaRun[] }).fmaRun());
    await page.close();
    expect(problems).toEqual([]);
    expect(inBrowser.map((r) => [r.dtype, r.backend, r.fma])).toEqual([
      ["float32", "wasm", false], ["float32", "wasm", true], ["float64", "wasm", false], ["float64", "wasm", true],
    ]);
    // The same CPU fuses the same way under both: the page's bits are Node's, fused and not.
    expect(inBrowser, `Chromium ${browser!.version()} vs Node ${process.version} --experimental-wasm-relaxed-simd`).toEqual(inNode);
    for (const [off, on] of [[inBrowser[0]!, inBrowser[1]!], [inBrowser[2]!, inBrowser[3]!]]) {
      // Fused, each step rounds once: the weights move apart in the last bits, the losses agree to rounding.
      expect(on.weights, on.dtype).not.toBe(off.weights);
      const tol = on.dtype === "float32" ? 1e-5 : 1e-12;
      on.losses.forEach((l, k) => expect(Math.abs(l - off.losses[k]!) / off.losses[k]!, `${on.dtype} step ${k}`).toBeLessThan(tol));
    }
    console.log(`Chromium ${browser!.version()}: fma: true trains to Node ${process.version}'s bits (with relaxed SIMD), float32 and float64; fma: false to its bits without`);
  }, 120_000);

  it("both cores with Web Workers (longshort/web): two threads in a worker of an isolated page, one elsewhere", async () => {
    // A training worker of the user's: one model on one thread, the same model on two, in lockstep.
    writeFileSync(join(app, "trainer.mjs"), `
import { Sequential, LSTM, Dense, Adam, tensor } from "longshort";
import { setThreads, canShareMemory } from "longshort/web";
const make = () => {
  const m = new Sequential([new LSTM({ units: 6, inputDim: 3 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 3 });
  m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: "binaryCrossentropy", metrics: ["accuracy"] });
  return m;
};
let s = 7;
const next = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
const x = tensor(Array.from({ length: 16 }, () => Array.from({ length: 5 }, () => [next() - 0.5, next() - 0.5, next() - 0.5])));
const y = tensor(Array.from({ length: 16 }, () => [next() < 0.5 ? 0 : 1]));
const rel = (a, b) => { let w = 0, scale = 0; for (const v of b) scale = Math.max(scale, Math.abs(v)); a.forEach((v, i) => { w = Math.max(w, Math.abs(v - b[i]) / scale); }); return w; };
const go = async () => {
  const one = make(), two = make();
  const n = await setThreads(two, 2, { workerUrl: "longshort-worker.js", minFlops: 0 }); // relative to this script
  let lossDiff = 0;
  const calls = () => (two.engine.executor ? two.engine.executor.parallelCalls : 0);
  const stages = [calls()];
  for (let k = 0; k < 3; k++) lossDiff = Math.max(lossDiff, rel([two.trainOnBatch(x, y).loss], [one.trainOnBatch(x, y).loss]));
  stages.push(calls());
  const h1 = await one.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0 }), h2 = await two.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0 });
  stages.push(calls());
  const g1 = one.computeGradients(x, y), g2 = two.computeGradients(x, y);
  stages.push(calls());
  const w1 = one.getWeights(), w2 = two.getWeights();
  const predictDiff = rel(Array.from(two.predict(x).data), Array.from(one.predict(x).data));
  stages.push(calls());
  postMessage({
    n, threads: two.threads, canShare: canShareMemory(), isolated: self.crossOriginIsolated, stages,
    parallelCalls: two.engine.executor ? two.engine.executor.parallelCalls : 0,
    lossDiff: Math.max(lossDiff, rel(h2.history.loss, h1.history.loss), rel([g2.loss], [g1.loss])),
    gradDiff: Math.max(...g1.grads.map((g, i) => rel(Array.from(g2.grads[i].data), Array.from(g.data)))),
    weightDiff: Math.max(...w1.map((w, i) => rel(Array.from(w2[i].data), Array.from(w.data)))),
    predictDiff,
  });
  two.dispose();
};
self.onmessage = async (e) => {
  if (e.data !== "bad url") return go();
  const m = make();
  let error = "";
  try { await setThreads(m, 2, { workerUrl: "no-such-worker.js" }); } catch (err) { error = err.name + ": " + err.message; }
  postMessage({ error, threads: m.threads, loss: m.trainOnBatch(x, y).loss });
};
`);
    writeFileSync(join(app, "threads-page.mjs"), `
import { Sequential, LSTM, Dense, setThreads, canShareMemory } from "longshort/web";
window.trainInWorker = (what = "go") => new Promise((resolve, reject) => {
  const w = new Worker("trainer.js");
  w.onmessage = (e) => { resolve(e.data); w.terminate(); };
  w.onerror = (e) => reject(new Error(e.message));
  w.postMessage(what);
});
window.onMainThread = async () => {
  const m = new Sequential([new LSTM({ units: 2, inputDim: 1 }), new Dense({ units: 1 })], { seed: 1 });
  return { n: await setThreads(m, 2, { workerUrl: "longshort-worker.js" }), threads: m.threads, canShare: canShareMemory(), isolated: crossOriginIsolated };
};
`);
    for (const [entry, format] of [["trainer", "iife"], ["threads-page", "esm"]] as const) {
      await build({ entryPoints: [join(app, `${entry}.mjs`)], bundle: true, platform: "browser", format, outfile: join(www, `${entry}.js`), logLevel: "silent", absWorkingDir: app });
    }
    // The package's worker script, as a user serves it: resolved through its export.
    const workerScript = run(process.execPath, ["-e", `process.stdout.write(require.resolve("longshort/web/worker.js"))`], app);
    writeFileSync(join(www, "longshort-worker.js"), readFileSync(workerScript));
    writeFileSync(join(www, "threads.html"), `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>threads</title>
<link rel="icon" href="data:,"><script type="module" src="threads-page.js"></script></head><body></body></html>`);

    type Run = { n: number; threads: number; canShare: boolean; isolated: boolean; stages: number[]; parallelCalls: number; lossDiff: number; gradDiff: number; weightDiff: number; predictDiff: number };
    const inWorker = async (path: string): Promise<{ run: Run; main: { n: number; threads: number; canShare: boolean; isolated: boolean }; problems: string[] }> => {
      const { page, problems } = await open(path);
      await page.waitForFunction(() => typeof (globalThis as unknown as { trainInWorker?: unknown }).trainInWorker === "function");
      const run = await page.evaluate(() => (globalThis as unknown as { trainInWorker: () => Promise<Run> }).trainInWorker());
      const main = await page.evaluate(() => (globalThis as unknown as { onMainThread: () => Promise<Run> }).onMainThread());
      await page.close();
      return { run, main, problems };
    };

    // Cross-origin isolated: the worker trains on two threads, as one thread would.
    const iso = await inWorker("iso/threads.html");
    expect(iso.problems).toEqual([]);
    expect(iso.run.isolated).toBe(true);
    expect(iso.run.canShare).toBe(true);
    expect(iso.run.n).toBe(2);
    expect(iso.run.threads).toBe(2);
    // Every call split: 3 steps, fit's 2 epochs of 2 batches, computeGradients, predict.
    expect(iso.run.stages, JSON.stringify(iso.run)).toEqual([0, 3, 3 + 4, 3 + 4 + 1, 3 + 4 + 1 + 1]);
    expect(iso.run.parallelCalls).toBe(9); // 3 steps, 2 epochs of 2 batches, computeGradients, predict
    for (const k of ["lossDiff", "gradDiff", "weightDiff", "predictDiff"] as const) expect(iso.run[k], k).toBeLessThanOrEqual(1e-12);
    // The page's main thread may not block: one thread.
    expect(iso.main).toEqual({ n: 1, threads: 1, canShare: false, isolated: true });

    // A worker script that does not load: setThreads rejects at once, and the model trains on one thread.
    {
      const { page, problems } = await open("iso/threads.html");
      await page.waitForFunction(() => typeof (globalThis as unknown as { trainInWorker?: unknown }).trainInWorker === "function");
      const bad = await page.evaluate(() => (globalThis as unknown as { trainInWorker: (w: string) => Promise<{ error: string; threads: number; loss: number }> }).trainInWorker("bad url"));
      await page.close();
      expect(bad.error).toMatch(/^StateError: worker threads: a worker ended before it was ready .*is the worker script's URL right/);
      expect(bad.threads).toBe(1);
      expect(Number.isFinite(bad.loss)).toBe(true);
      expect(problems.filter((p) => !p.includes("no-such-worker.js"))).toEqual([]);
    }

    // Not isolated: no shared memory anywhere, one thread, and the same results.
    const plain = await inWorker("threads.html");
    expect(plain.problems).toEqual([]);
    expect(plain.run).toMatchObject({ n: 1, threads: 1, canShare: false, isolated: false, parallelCalls: 0, lossDiff: 0, gradDiff: 0, weightDiff: 0, predictDiff: 0 });
    expect(plain.main).toEqual({ n: 1, threads: 1, canShare: false, isolated: false });
    console.log(`Chromium ${browser!.version()}: a Web Worker trained on 2 threads (${iso.run.parallelCalls} split calls), equal to one thread's to ${Math.max(iso.run.lossDiff, iso.run.gradDiff, iso.run.weightDiff, iso.run.predictDiff).toExponential(1)}`);
  }, 120_000);

  it("keeping models in the browser (longshort/web): IndexedDB across a reload, a download, a file input — the same bytes and predictions as Node", async () => {
    writeFileSync(join(app, "storage-page.mjs"), `
import { Sequential, LSTM, Dense, Adam, tensor, encodeCheckpoint, toSafetensors, saveCheckpoint, loadCheckpoint, saveSafetensors, loadSafetensors, listModels, removeModel } from "longshort/web";
const hex = (a) => Array.from(new Uint8Array(new Float64Array(a).buffer), (b) => b.toString(16).padStart(2, "0")).join("");
const bytesHex = (u) => Array.from(u, (b) => b.toString(16).padStart(2, "0")).join("");
const x = tensor([[[1], [0], [0]], [[0], [0], [0]], [[1], [0], [0]], [[0], [0], [0]]]), y = tensor([[1], [0], [1], [0]]);
const trained = () => {
  const m = new Sequential([new LSTM({ units: 4, inputDim: 1 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 9 });
  m.compile({ optimizer: new Adam({ learningRate: 0.05 }), loss: "binaryCrossentropy" });
  for (let k = 0; k < 5; k++) m.trainOnBatch(x, y);
  return m;
};
const errorOf = async (f) => { try { await f(); return "accepted"; } catch (e) { return e.name + ": " + e.message; } };
window.storageSave = async () => {
  const m = trained();
  await saveCheckpoint(m, "indexeddb://first-element");
  await saveSafetensors(m, "indexeddb://first-element.weights");
  return { checkpoint: bytesHex(encodeCheckpoint(m)), safetensors: bytesHex(toSafetensors(m)), predictions: hex(m.predict(x).data), list: await listModels() };
};
window.storageLoad = async () => {
  const back = await loadCheckpoint("indexeddb://first-element");
  const weights = await loadSafetensors("indexeddb://first-element.weights");
  const stepLoss = back.trainOnBatch(x, y).loss, twin = trained(); // the optimizer state came back too
  return {
    predictions: hex(weights.predict(x).data), stepLoss, twinStepLoss: twin.trainOnBatch(x, y).loss,
    errors: [
      await errorOf(() => loadCheckpoint("indexeddb://nothing-here")),
      await errorOf(() => loadCheckpoint("indexeddb://first-element.weights")),
      await errorOf(() => saveCheckpoint(back, "localstorage://x")),
      await errorOf(() => saveCheckpoint({}, "indexeddb://x")),
      await errorOf(() => removeModel("indexeddb://nothing-here")),
    ],
  };
};
window.storageRemove = async () => { await removeModel("indexeddb://first-element"); return Object.keys(await listModels()); };
window.storageDownload = async () => { await saveCheckpoint(trained(), "downloads://first-element.ckpt"); };
window.storageFromFile = async () => {
  const file = document.querySelector("input").files[0];
  return { name: file.name, predictions: hex((await loadCheckpoint(file)).predict(x).data) };
};
`);
    await build({ entryPoints: [join(app, "storage-page.mjs")], bundle: true, platform: "browser", format: "esm", outfile: join(www, "storage-page.js"), logLevel: "silent", absWorkingDir: app });
    writeFileSync(join(www, "storage.html"), `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>storage</title>
<link rel="icon" href="data:,"><script type="module" src="storage-page.js"></script></head><body><input type="file"></body></html>`);
    // Node's bytes of the same model, from the installed package.
    writeFileSync(join(app, "storage-node.mjs"), `
import { Sequential, LSTM, Dense, Adam, tensor, encodeCheckpoint, toSafetensors } from "longshort";
const x = tensor([[[1], [0], [0]], [[0], [0], [0]], [[1], [0], [0]], [[0], [0], [0]]]), y = tensor([[1], [0], [1], [0]]);
const m = new Sequential([new LSTM({ units: 4, inputDim: 1 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 9 });
m.compile({ optimizer: new Adam({ learningRate: 0.05 }), loss: "binaryCrossentropy" });
for (let k = 0; k < 5; k++) m.trainOnBatch(x, y);
const bytesHex = (u) => Array.from(u, (b) => b.toString(16).padStart(2, "0")).join("");
console.log(JSON.stringify({ checkpoint: bytesHex(encodeCheckpoint(m)), safetensors: bytesHex(toSafetensors(m)) }));
`);
    const inNode = JSON.parse(node("storage-node.mjs").trim()) as { checkpoint: string; safetensors: string };
    type Saved = { checkpoint: string; safetensors: string; predictions: string; list: Record<string, { kind: string; bytes: number; savedAt: string }> };
    type W = Record<string, () => Promise<unknown>>;
    const { page, problems } = await open("storage.html");
    await page.waitForFunction(() => typeof (globalThis as unknown as W).storageSave === "function");
    const saved = await page.evaluate(() => (globalThis as unknown as W).storageSave!()) as Saved;
    // The checkpoint's header and payload are the same bytes in Chromium as in Node (the RNG states included).
    expect(saved.checkpoint).toBe(inNode.checkpoint);
    expect(saved.safetensors).toBe(inNode.safetensors);
    expect(saved.list["indexeddb://first-element"]).toMatchObject({ kind: "checkpoint", bytes: inNode.checkpoint.length / 2 });
    expect(saved.list["indexeddb://first-element.weights"]).toMatchObject({ kind: "safetensors", bytes: inNode.safetensors.length / 2 });
    await page.reload();
    await page.waitForFunction(() => typeof (globalThis as unknown as W).storageLoad === "function");
    const loaded = await page.evaluate(() => (globalThis as unknown as W).storageLoad!()) as { predictions: string; stepLoss: number; twinStepLoss: number; errors: string[] };
    expect(loaded.predictions).toBe(saved.predictions);
    expect(loaded.stepLoss).toBe(loaded.twinStepLoss); // weights, Adam's moments and step count all came back
    expect(loaded.errors[0]).toMatch(/^CheckpointError: loadCheckpoint indexeddb:\/\/nothing-here: nothing is stored under this name/);
    expect(loaded.errors[1]).toMatch(/^CheckpointError: loadCheckpoint indexeddb:\/\/first-element\.weights: holds a safetensors, not a checkpoint/);
    expect(loaded.errors[2]).toMatch(/^ValueError: saveCheckpoint url: expected "indexeddb:\/\/NAME" or "downloads:\/\/FILE"/);
    expect(loaded.errors[3]).toMatch(/^ValueError: saveCheckpoint model: expected a Sequential/);
    expect(loaded.errors[4]).toMatch(/^ValueError: removeModel indexeddb:\/\/nothing-here: nothing is stored/);
    expect(await page.evaluate(() => (globalThis as unknown as W).storageRemove!())).toEqual(["indexeddb://first-element.weights"]);
    // A download, as the user gets it, then the same file through a file input.
    const [download] = await Promise.all([page.waitForEvent("download"), page.evaluate(() => (globalThis as unknown as W).storageDownload!())]);
    expect(download.suggestedFilename()).toBe("first-element.ckpt");
    const file = join(work, "first-element.ckpt");
    await download.saveAs(file);
    expect(readFileSync(file).toString("hex")).toBe(inNode.checkpoint);
    await page.setInputFiles("input", file);
    const fromFile = await page.evaluate(() => (globalThis as unknown as W).storageFromFile!()) as { name: string; predictions: string };
    expect(fromFile).toEqual({ name: "first-element.ckpt", predictions: saved.predictions });
    expect(problems).toEqual([]);
    await page.close();
  }, 120_000);
});
