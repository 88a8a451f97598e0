/**
 * Keeping models in the browser, named as TensorFlow.js names its storage: `indexeddb://NAME` keeps the bytes in
 * the page's IndexedDB (database "longshort", one record per name, written in one transaction: a save is whole or
 * absent), `downloads://FILE` offers them as a download, and a `File` or `Blob` (a file input's, a drop's) is read
 * back. Checkpoints (encodeCheckpoint's bytes: weights, optimizer state, states, RNGs) and safetensors (weights
 * only, for PyTorch) both travel this way; what is stored is exactly what `longshort/node` writes to files.
 */
import { Sequential } from "../model.js";
import { encodeCheckpoint, decodeCheckpoint, runOptions } from "../checkpoint.js";
import { toSafetensors, fromSafetensors } from "../interop/safetensors.js";
import type { RunOptions } from "../run-options.js";
import { CheckpointError, FormatError, ValueError, fmtInstance, fmtValue } from "../errors.js";

const DB = "longshort", STORE = "models";

// What this file needs of IndexedDB and the page (declared here, as web/threads.ts declares its Web Worker, so that
// the package's types need no DOM library).
interface Req<T> { readonly result: T; readonly error: unknown; onsuccess: (() => void) | null; onerror: (() => void) | null }
interface OpenReq extends Req<Db> { onupgradeneeded: (() => void) | null }
interface Factory { open(name: string, version: number): OpenReq }
interface Db { transaction(store: string, mode: Mode): Tx; createObjectStore(name: string, options: { keyPath: string }): unknown; close(): void }
type Mode = "readonly" | "readwrite";
interface Tx { objectStore(name: string): Store; readonly error: unknown; oncomplete: (() => void) | null; onerror: (() => void) | null; onabort: (() => void) | null }
interface Store {
  put(value: unknown): Req<unknown>; get(key: string): Req<unknown>; getAll(): Req<unknown[]>;
  count(key: string): Req<number>; delete(key: string): Req<unknown>;
}
interface Anchor { href: string; download: string; click(): void; remove(): void }
interface Doc { createElement(tag: "a"): Anchor; readonly body: { appendChild(node: Anchor): unknown } }

/** A File or a Blob, as the loaders read them (a file input's `files[0]`, a drop's, a fetch's `blob()`). */
export interface BlobLike {
  arrayBuffer(): Promise<ArrayBuffer>;
  /** A File's name (a Blob has none). */
  readonly name?: string;
}

function isBlobLike(v: unknown): v is BlobLike {
  return typeof v === "object" && v !== null && typeof (v as BlobLike).arrayBuffer === "function";
}

/** What a stored record says of itself (listModels). */
export interface StoredModelInfo {
  /** "checkpoint" or "safetensors". */
  kind: "checkpoint" | "safetensors";
  /** Bytes stored. */
  bytes: number;
  /** When it was saved, ISO 8601. */
  savedAt: string;
}

interface StoredRecord extends StoredModelInfo { name: string; data: Uint8Array }

/** A save target: `indexeddb://NAME` or `downloads://FILE`, parsed. */
function target(what: string, url: unknown): { scheme: "indexeddb" | "downloads"; name: string } {
  if (typeof url !== "string") throw new ValueError(`${what} url: expected "indexeddb://NAME" or "downloads://FILE", got ${fmtValue(url)}`);
  const m = /^(indexeddb|downloads):\/\/(.+)$/.exec(url);
  if (!m) throw new ValueError(`${what} url: expected "indexeddb://NAME" or "downloads://FILE" (the schemes TensorFlow.js uses), got ${JSON.stringify(url)}`);
  return { scheme: m[1] as "indexeddb" | "downloads", name: m[2]! };
}

function idb(what: string): Factory {
  const f = (globalThis as { indexedDB?: Factory }).indexedDB;
  if (!f) throw new ValueError(`${what}: this runtime has no IndexedDB (a browser page or worker has; in Node, use longshort/node's files)`);
  return f;
}

function request<T>(r: Req<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

async function open(what: string): Promise<Db> {
  const r = idb(what).open(DB, 1);
  r.onupgradeneeded = () => { r.result.createObjectStore(STORE, { keyPath: "name" }); };
  return request(r);
}

/** Runs `fn` in one transaction on the store; resolves when the transaction has committed. */
async function transact<T>(what: string, mode: Mode, fn: (s: Store) => Req<T>): Promise<T> {
  const db = await open(what);
  try {
    const tx = db.transaction(STORE, mode);
    const result = request(fn(tx.objectStore(STORE)));
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("the transaction was aborted"));
    });
    return await result;
  } finally {
    db.close();
  }
}

async function put(what: string, name: string, kind: StoredModelInfo["kind"], data: Uint8Array): Promise<void> {
  const rec: StoredRecord = { name, kind, data, bytes: data.length, savedAt: new Date().toISOString() };
  try {
    await transact(what, "readwrite", (s) => s.put(rec));
  } catch (e) {
    throw new FormatError(`${what} indexeddb://${name}: the browser refused to store ${data.length} bytes: ${(e as Error)?.message ?? String(e)}`);
  }
}

function download(name: string, data: Uint8Array): void {
  const doc = (globalThis as { document?: Doc }).document;
  if (!doc) throw new ValueError(`downloads://${name}: downloads need a page (a document); in a worker, post the bytes to the page or use indexeddb://`);
  const url = URL.createObjectURL(new Blob([data as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }));
  const a = doc.createElement("a");
  a.href = url;
  a.download = name;
  doc.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

/** The bytes of `indexeddb://NAME` (of the kind asked for) or of a File/Blob. */
async function bytesOf(what: string, source: unknown, kind: StoredModelInfo["kind"]): Promise<{ data: Uint8Array; label: string }> {
  if (isBlobLike(source)) {
    const label = typeof source.name === "string" ? source.name : "the Blob";
    return { data: new Uint8Array(await source.arrayBuffer()), label };
  }
  if (typeof source !== "string" || !source.startsWith("indexeddb://") || source.length === "indexeddb://".length) {
    throw new ValueError(`${what} source: expected "indexeddb://NAME", a File or a Blob (a file input's), got ${typeof source === "string" ? JSON.stringify(source) : fmtValue(source)}`);
  }
  const name = source.slice("indexeddb://".length);
  const rec = await transact(what, "readonly", (s) => s.get(name) as Req<StoredRecord | undefined>);
  const Err = kind === "checkpoint" ? CheckpointError : FormatError;
  if (!rec) throw new Err(`${what} ${source}: nothing is stored under this name (listModels() gives what is)`);
  if (rec.kind !== kind) throw new Err(`${what} ${source}: holds a ${rec.kind}, not a ${kind}`);
  return { data: rec.data, label: source };
}

function checkModel(what: string, model: unknown): Sequential {
  if (!(model instanceof Sequential)) throw new ValueError(`${what} model: expected a Sequential, got ${fmtInstance(model, "Sequential")}`);
  return model;
}

/**
 * Saves a checkpoint (encodeCheckpoint's bytes) in the page's IndexedDB or as a download. The snapshot is taken
 * when called.
 *
 * @example
 * await saveCheckpoint(model, "indexeddb://sine");         // kept across reloads
 * await saveCheckpoint(model, "downloads://sine.ckpt");     // the browser offers the file
 */
export async function saveCheckpoint(model: Sequential, url: string): Promise<void> {
  const t = target("saveCheckpoint", url);
  const data = encodeCheckpoint(checkModel("saveCheckpoint", model));
  if (t.scheme === "downloads") download(t.name, data);
  else await put("saveCheckpoint", t.name, "checkpoint", data);
}

/**
 * Loads a checkpoint from `indexeddb://NAME` or from a File/Blob (a file input's) into a new model. `options`:
 * where it runs, as decodeCheckpoint's ({ backend?, fma? }).
 *
 * @example
 * const model = await loadCheckpoint("indexeddb://sine");
 * input.onchange = async () => { const m = await loadCheckpoint(input.files![0]!); };
 */
export async function loadCheckpoint(source: string | BlobLike, options?: RunOptions): Promise<Sequential> {
  const run = runOptions("loadCheckpoint", options);
  const { data, label } = await bytesOf("loadCheckpoint", source, "checkpoint");
  return decodeCheckpoint(data, { source: `load ${label}`, ...run });
}

/**
 * Saves the weights as safetensors (toSafetensors' bytes, which PyTorch's safetensors reads) in IndexedDB or as a
 * download.
 *
 * @example
 * await saveSafetensors(model, "downloads://model.safetensors");
 */
export async function saveSafetensors(model: Sequential, url: string): Promise<void> {
  const t = target("saveSafetensors", url);
  const data = toSafetensors(checkModel("saveSafetensors", model));
  if (t.scheme === "downloads") download(t.name, data);
  else await put("saveSafetensors", t.name, "safetensors", data);
}

/**
 * Loads safetensors from `indexeddb://NAME` or a File/Blob: into `model` when given (its weights replaced), else
 * into a new model built from the file's metadata, as fromSafetensors.
 *
 * @example
 * const m = await loadSafetensors(fileInput.files![0]!);
 */
export async function loadSafetensors(source: string | BlobLike, model?: Sequential, options?: RunOptions): Promise<Sequential> {
  if (model !== undefined) checkModel("loadSafetensors", model);
  const run = options === undefined ? {} : runOptions("loadSafetensors", options);
  if (model !== undefined && options !== undefined && ((options as RunOptions).backend !== undefined || (options as RunOptions).fma !== undefined)) {
    throw new ValueError("loadSafetensors options: backend and fma choose how a new model runs; the model given keeps its own");
  }
  const { data, label } = await bytesOf("loadSafetensors", source, "safetensors");
  return fromSafetensors(data, model, { source: `load ${label}`, ...(model === undefined ? run : {}) });
}

/**
 * What the page's IndexedDB holds, by `indexeddb://NAME` URL, as tf.io.listModels.
 *
 * @example
 * await listModels();   // { "indexeddb://sine": { kind: "checkpoint", bytes: 5021, savedAt: "2026-…" } }
 */
export async function listModels(): Promise<Record<string, StoredModelInfo>> {
  const all = await transact("listModels", "readonly", (s) => s.getAll() as Req<StoredRecord[]>);
  const out: Record<string, StoredModelInfo> = {};
  for (const r of all) out[`indexeddb://${r.name}`] = { kind: r.kind, bytes: r.bytes, savedAt: r.savedAt };
  return out;
}

/**
 * Deletes `indexeddb://NAME`, as tf.io.removeModel; refuses a name that holds nothing.
 *
 * @example
 * await removeModel("indexeddb://sine");
 */
export async function removeModel(url: string): Promise<void> {
  const t = target("removeModel", url);
  if (t.scheme !== "indexeddb") throw new ValueError(`removeModel url: expected "indexeddb://NAME", got ${JSON.stringify(url)}`);
  const had = await transact("removeModel", "readonly", (s) => s.count(t.name));
  if (!had) throw new ValueError(`removeModel ${url}: nothing is stored under this name`);
  await transact("removeModel", "readwrite", (s) => s.delete(t.name));
}
