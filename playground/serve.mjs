#!/usr/bin/env node
// `npm run playground [-- --port N]`: builds playground/dist/ and serves it on 127.0.0.1 (node:http, no
// dependency). Only the files of dist/ are served; nothing else is read.
import { createServer } from "node:http";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { buildPlayground, distDir } from "./build.mjs";

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8" };

/** Serves dir on 127.0.0.1:port (0: any free port); resolves with the server and its URL. */
export function serveDir(dir, port = 0) {
  const server = createServer((req, res) => {
    let name = decodeURIComponent((req.url ?? "/").split("?")[0]).replace(/^\/+/, "");
    if (name === "") name = "index.html";
    if (!readdirSync(dir).includes(name)) { res.writeHead(404, { "content-type": "text/plain" }).end("not found"); return; }
    const type = TYPES[name.slice(name.lastIndexOf("."))] ?? "application/octet-stream";
    res.writeHead(200, { "content-type": type, "cache-control": "no-store" }).end(readFileSync(join(dir, name)));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${server.address().port}/` }));
  });
}

const pi = process.argv.indexOf("--port");
const port = pi >= 0 ? Number(process.argv[pi + 1]) : Number(process.env.PORT ?? 8080);
const { bytes } = await buildPlayground();
console.log(`built playground/dist/ (playground.js ${(bytes / 1024).toFixed(0)} KiB)`);
const { url } = await serveDir(distDir, port);
console.log(`longshort playground: ${url}  (Ctrl-C to stop)`);
