/**
 * The playground (playground/, `npm run playground`) in a real headless Chromium (Debian's, driven by
 * playwright-core, as test/package.test.ts): served by playground/serve.mjs itself (which builds first), the
 * page loads without console errors, trains in its Web Worker (stateful ≥ 0.95, split windows 0.70–0.80),
 * draws its plots with the expected number of points and cells, stops on request, downloads and loads its
 * weights; and `npm run demo -- --plot DIR`'s function writes the same SVG plots from Node.
 *
 * Screenshot: always to a temporary directory; also to playground/screenshot.png (the README's) when
 * UPDATE_SCREENSHOT=1.
 * Chromium: $LONGSHORT_CHROMIUM or /usr/bin/chromium.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { writePlots } from "../examples/first-element.js";
import { lineChart, heatmap } from "../playground/plots.js";
import type { Settings } from "../playground/session.js";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const work = mkdtempSync(join(tmpdir(), "longshort-playground-"));
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

interface Final { epochs: number; stopped: boolean; loss: number; accuracy: number; testLoss: number; testAccuracy: number; seconds: number }
type PG = { playground: { run(s: Partial<Settings>): Promise<Final>; stop(): void; backend(): Promise<string>; reports: unknown[] } };

/** Points of every `<polyline class="series">` in an SVG string. */
function polylinePoints(svg: string): number[] {
  return [...svg.matchAll(/<polyline class="series"[^>]*points="([^"]*)"/g)].map((m) => (m[1]!.trim() ? m[1]!.trim().split(/\s+/).length : 0));
}
const cells = (svg: string): number => (svg.match(/<rect class="cell"/g) ?? []).length;

describe("plots.ts (pure SVG)", () => {
  it("draws one polyline point per value and one heatmap cell per value, zeros grey", () => {
    const line = lineChart({ title: "t <&>", xLabel: "x", yLabel: "y", series: [{ name: "a", values: [1, 2, NaN, 4], color: "red" }, { name: "b", values: [3], color: "blue" }] });
    expect(line.startsWith("<svg")).toBe(true);
    expect(line).toContain("<title>t &lt;&amp;&gt;</title>");
    expect(polylinePoints(line)).toEqual([3, 1]);
    const map = heatmap({ title: "h", xLabel: "t", yLabel: "epoch", rows: [[0, 1e-6, 1e-3], [1, 0, 2]] });
    expect(cells(map)).toBe(6);
    expect((map.match(/fill="#e6e6e6"/g) ?? []).length).toBe(2);
  });
});

describe("npm run demo -- --plot DIR", () => {
  it("writes the loss, accuracy, gradient-heatmap and cell-state SVGs of a short run", async () => {
    const dir = join(work, "plots");
    const { files, testAccuracy } = await writePlots(dir, { modes: ["split", "tbptt"], settings: { epochs: 3, nTrain: 100, k1: 10, k2: 5 } });
    expect(files.length).toBe(8);
    expect(readdirSync(dir).sort()).toEqual(["split", "tbptt"].flatMap((m) => ["accuracy", "cell", "gradients", "loss"].map((p) => `${m}-${p}.svg`)).sort());
    for (const f of files) {
      const svg = readFileSync(f, "utf8");
      expect(svg, f).toMatch(/^<\?xml[^>]*>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[\s\S]*<\/svg>\n$/);
      if (f.endsWith("-loss.svg") || f.endsWith("-accuracy.svg")) expect(polylinePoints(svg), f).toEqual([3, 3]); // train, test: one per epoch
      if (f.endsWith("-gradients.svg")) expect(cells(svg), f).toBe(3 * 20); // one row per epoch, T = 20 cells
      if (f.endsWith("-cell.svg")) expect(polylinePoints(svg), f).toEqual(Array(10).fill(20)); // 10 units × 20 steps
    }
    // TruncatedBPTT(10, 5): steps 0–4 and 10–14 get no gradient: 10 grey cells per epoch.
    expect((readFileSync(join(dir, "tbptt-gradients.svg"), "utf8").match(/class="cell"[^>]*fill="#e6e6e6"/g) ?? []).length).toBe(30);
    expect(testAccuracy.split).toBeLessThanOrEqual(0.75);
  });
});

describe("the page, in Chromium", () => {
  let server: ChildProcess | null = null;
  let url = "";
  let browser: Browser | null = null;
  let page: Page;
  const problems: string[] = [];

  beforeAll(async () => {
    const executablePath = process.env.LONGSHORT_CHROMIUM ?? "/usr/bin/chromium";
    if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath}: install Debian's chromium or set LONGSHORT_CHROMIUM`);
    // `npm run playground`'s own server: it builds playground/dist/ and prints its URL.
    server = spawn(process.execPath, [join(repo, "playground", "serve.mjs"), "--port", "0"], { cwd: repo, stdio: ["ignore", "pipe", "pipe"] });
    url = await new Promise<string>((resolve, reject) => {
      let out = "", err = "";
      server!.stdout!.on("data", (d: Buffer) => { out += d; const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out); if (m) resolve(m[1]!); });
      server!.stderr!.on("data", (d: Buffer) => { err += d; });
      server!.on("exit", (code) => reject(new Error(`serve.mjs exited (${code}):\n${out}\n${err}`)));
      setTimeout(() => reject(new Error(`serve.mjs printed no URL in 30 s:\n${out}\n${err}`)), 30_000);
    });
    browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 }, acceptDownloads: true });
    page.on("console", (msg) => { if (msg.type() === "error" || msg.type() === "warning") problems.push(`console.${msg.type()}: ${msg.text()}`); });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));
    page.on("request", (r) => { if (!r.url().startsWith(url) && !r.url().startsWith("blob:") && !r.url().startsWith("data:")) problems.push(`foreign request: ${r.url()}`); });
    await page.goto(url);
    await page.waitForFunction(() => typeof (globalThis as unknown as Partial<PG>).playground === "object");
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    server?.kill();
    rmSync(work, { recursive: true, force: true });
  });

  const run = (s: Partial<Settings>): Promise<Final> => page.evaluate((s) => (globalThis as unknown as PG).playground.run(s), s);
  const svgOf = (id: string): Promise<string> => page.locator(`#plot-${id}`).innerHTML();

  it("serves index.html and playground.js only, and the page loads with no console errors, its trainer in a Web Worker", async () => {
    const html = await (await fetch(url)).text();
    expect(html).toContain(`<script src="playground.js">`);
    expect((await fetch(`${url}playground.js`)).headers.get("content-type")).toMatch(/javascript/);
    expect((await fetch(`${url}../package.json`)).status).toBe(404);
    expect(await page.evaluate(() => (globalThis as unknown as PG).playground.backend())).toBe("worker");
    // Every control has a label (the accessible name).
    const unlabelled = await page.evaluate<string[]>(`[...document.querySelectorAll("input, select")].filter((e) => !e.labels || !e.labels.length).map((e) => e.outerHTML)`);
    expect(unlabelled).toEqual([]);
    expect(problems).toEqual([]);
  });

  it("a stateful run reaches test accuracy ≥ 0.95, with one plot point per epoch and a heatmap row per epoch", async () => {
    const t0 = performance.now();
    const final = await run({ mode: "stateful", epochs: 4, seed: 1, units: 10, learningRate: 0.005, nTrain: 300, batchSize: 10 });
    console.log(`stateful, 4 epochs in the page: test accuracy ${final.testAccuracy.toFixed(3)}, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect(final.stopped).toBe(false);
    expect(final.epochs).toBe(4);
    expect(final.testAccuracy).toBeGreaterThanOrEqual(0.95);
    expect(polylinePoints(await svgOf("loss"))).toEqual([4, 4]);
    expect(polylinePoints(await svgOf("accuracy"))).toEqual([4, 4]);
    expect(cells(await svgOf("gradients"))).toBe(4 * 20);
    expect(polylinePoints(await svgOf("cell"))).toEqual(Array(10).fill(20));
    expect(await page.locator("#status").textContent()).toMatch(/^Done after 4 epochs .* test accuracy 1\.000|^Done after 4 epochs .* test accuracy 0\.9[5-9]/);
    expect(problems).toEqual([]);
  }, 60_000);

  it("a split-window stateless run stays within 0.70–0.80 (the second window cannot see the first value)", async () => {
    const t0 = performance.now();
    const final = await run({ mode: "split", epochs: 4, seed: 1, units: 10, learningRate: 0.005, nTrain: 300, batchSize: 10 });
    console.log(`split windows, 4 epochs in the page: test accuracy ${final.testAccuracy.toFixed(3)}, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect(final.testAccuracy).toBeGreaterThanOrEqual(0.7);
    expect(final.testAccuracy).toBeLessThanOrEqual(0.8);
    expect(polylinePoints(await svgOf("accuracy"))).toEqual([4, 4]);
    expect(problems).toEqual([]);
  }, 60_000);

  it("TruncatedBPTT(10, 4): the heatmap shows the k2 cut (no gradient before it), and the screenshot", async () => {
    const final = await run({ mode: "tbptt", epochs: 5, seed: 2, k1: 10, k2: 4, nTrain: 300, batchSize: 10 });
    expect(final.epochs).toBe(5);
    const svg = await svgOf("gradients");
    expect(cells(svg)).toBe(5 * 20);
    expect((svg.match(/class="cell"[^>]*fill="#e6e6e6"/g) ?? []).length).toBe(5 * 12); // steps 0–5 and 10–15 of each epoch
    // The screenshot: a stateful run, the README's picture.
    await run({ mode: "stateful", epochs: 8, seed: 1, k1: 10, k2: 10, learningRate: 0.005, nTrain: 300, batchSize: 10 });
    const shot = join(work, "screenshot.png");
    await page.screenshot({ path: shot, fullPage: true });
    expect(readFileSync(shot).subarray(1, 4).toString()).toBe("PNG");
    if (process.env.UPDATE_SCREENSHOT === "1") copyFileSync(shot, join(repo, "playground", "screenshot.png"));
    console.log(`screenshot: ${shot}${process.env.UPDATE_SCREENSHOT === "1" ? " and playground/screenshot.png" : " (UPDATE_SCREENSHOT=1 to update playground/screenshot.png)"}`);
    expect(problems).toEqual([]);
  }, 60_000);

  it("Stop ends a long run within an epoch or so; the page stayed responsive", async () => {
    const stopped = await page.evaluate(async () => {
      const pg = (globalThis as unknown as PG).playground;
      const p = pg.run({ mode: "full", epochs: 200, nTrain: 300 });
      // The main thread is free while the worker trains: timers fire, and Stop is taken.
      const ticks = await new Promise<number>((resolve) => { let n = 0; const iv = setInterval(() => { if (++n === 5) { clearInterval(iv); resolve(n); } }, 20); });
      const t = performance.now();
      pg.stop();
      const final = await p;
      return { final, ticks, stopMs: performance.now() - t };
    });
    expect(stopped.final.stopped).toBe(true);
    expect(stopped.final.epochs).toBeLessThan(200);
    expect(stopped.stopMs).toBeLessThan(2000);
    expect(await page.locator("#status").textContent()).toMatch(/^Stopped after/);
    expect(problems).toEqual([]);
  }, 60_000);

  it("Download weights gives a safetensors file; Load weights reads it back (same test accuracy)", async () => {
    await run({ mode: "stateful", epochs: 2, seed: 3, nTrain: 200 });
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
    const file = join(work, "weights.safetensors");
    await download.saveAs(file);
    const bytes = readFileSync(file);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString()) as Record<string, unknown>;
    expect(Object.keys(header)).toContain("__metadata__");
    const before = await page.locator("#status").textContent();
    await page.setInputFiles("#load", file);
    await page.waitForFunction(`/^Loaded /.test(document.getElementById("status").textContent)`);
    expect(await page.locator("#status").textContent()).toMatch(/^Loaded weights\.safetensors: LSTM\(10\), test accuracy 1\.000/);
    expect(before).toMatch(/Downloaded \d+ bytes/);
    expect(problems).toEqual([]);
  }, 60_000);

  it("the built page also works from file:// (trainer on the page's thread when no worker starts)", async () => {
    const p = await browser!.newPage();
    const fileProblems: string[] = [];
    p.on("pageerror", (e) => fileProblems.push(`page error: ${e.message}`));
    p.on("console", (msg) => { if (msg.type() === "error") fileProblems.push(`console.error: ${msg.text()}`); });
    await p.goto(pathToFileURL(join(repo, "playground", "dist", "index.html")).href);
    await p.waitForFunction(() => typeof (globalThis as unknown as Partial<PG>).playground === "object");
    const backend = await p.evaluate(() => (globalThis as unknown as PG).playground.backend());
    const final = await p.evaluate(() => (globalThis as unknown as PG).playground.run({ mode: "stateful", epochs: 2, nTrain: 200 }));
    console.log(`file://: trainer on the ${backend}; test accuracy ${final.testAccuracy.toFixed(3)}; console: ${JSON.stringify(fileProblems)}`);
    expect(final.epochs).toBe(2);
    expect(fileProblems.filter((m) => !/Worker|worker|origin 'null'/.test(m))).toEqual([]);
    await p.close();
  }, 60_000);

  it("type-checks as a browser page (tsc -p playground: DOM, no Node types)", () => {
    execFileSync(process.execPath, [join(repo, "node_modules", "typescript", "bin", "tsc"), "--noEmit", "-p", join(repo, "playground")], { stdio: "pipe" });
  }, 60_000);
});
