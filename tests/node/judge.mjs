// The judge: React's own Flight client (react-server-dom-webpack 19) parses each payload file and
// prints a canonical JSON rendering of the decoded value (elements, text, typed arrays, Maps...),
// or the error it met. A wrong T length, a broken binary row or a corrupt row makes the client
// fail ("Connection closed." for rows it never saw, JSON errors for mangled rows).
// Usage: NODE_ENV=production node judge.mjs FILE...   ->   {"FILE": {"ok": true, "value": ...}, ...}
// Client references (I rows, e.g. Next.js payloads) resolve to placeholder components.
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';

const placeholder = new Proxy({}, { get: (_t, name) => (name === '__esModule' ? true : `client:${String(name)}`) });
globalThis.__webpack_require__ = () => placeholder;
globalThis.__webpack_chunk_load__ = () => Promise.resolve();
const moduleMap = new Proxy({}, {
  get: (_t, id) => new Proxy({}, { get: (_u, name) => ({ id, chunks: [], name }) }),
});

const { createFromNodeStream } = await import('react-server-dom-webpack/client.node');

const ELEMENT = new Set([Symbol.for('react.element'), Symbol.for('react.transitional.element')]);
const LAZY = Symbol.for('react.lazy');

async function resolveLazy(v) {
  for (let i = 0; i < 1000; i++) {
    try {
      return v._init(v._payload);
    } catch (e) {
      if (e && typeof e.then === 'function') await e;
      else throw e;
    }
  }
  throw new Error('lazy value never resolved');
}

async function canon(v, depth = 0) {
  if (depth > 200) throw new Error('too deep');
  if (v && typeof v.then === 'function') v = await v;
  if (v === undefined) return { undefined: true };
  if (typeof v === 'bigint') return { bigint: v.toString() };
  if (typeof v === 'number' && !Number.isFinite(v)) return { number: String(v) };
  if (typeof v === 'number' && Object.is(v, -0)) return { number: '-0' };
  if (typeof v === 'symbol') return { symbol: String(v.description) };
  if (typeof v === 'function') return { function: v.name || 'anonymous' };
  if (v === null || typeof v !== 'object') return v;
  if (ArrayBuffer.isView(v)) {
    return { view: v.constructor.name, bytes: Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) };
  }
  if (v instanceof ArrayBuffer) return { arraybuffer: Array.from(new Uint8Array(v)) };
  if (v instanceof Date) return { date: v.toISOString() };
  if (v instanceof Map) return { map: await Promise.all([...v].map(async ([k, x]) => [await canon(k, depth + 1), await canon(x, depth + 1)])) };
  if (v instanceof Set) return { set: await Promise.all([...v].map((x) => canon(x, depth + 1))) };
  if (v.$$typeof === LAZY) return canon(await resolveLazy(v), depth + 1);
  if (ELEMENT.has(v.$$typeof)) {
    const type = typeof v.type === 'string' ? v.type : (v.type && v.type.$$typeof === LAZY ? 'lazy-type' : String(v.type && (v.type.name || v.type)));
    return { element: type, key: v.key, props: await canon(v.props, depth + 1) };
  }
  if (Array.isArray(v)) return Promise.all(v.map((x) => canon(x, depth + 1)));
  const out = {};
  for (const k of Object.keys(v).sort()) out[k] = await canon(v[k], depth + 1);
  return out;
}

// A corrupt stream can make the client throw outside any promise; charge it to the current file.
let failCurrent = null;
process.on('uncaughtException', (e) => { if (failCurrent) failCurrent(e); else throw e; });

async function judge(file) {
  const bytes = readFileSync(file);
  const crashed = new Promise((_r, rej) => { failCurrent = rej; });
  const stream = Readable.from([bytes]);
  const root = createFromNodeStream(stream, { moduleMap, serverModuleMap: null, moduleLoading: null });
  const timeout = new Promise((_r, rej) => setTimeout(() => rej(new Error('timed out')), 5000));
  const value = await Promise.race([root, timeout, crashed]);
  return Promise.race([canon(value), timeout, crashed]);
}

const results = {};
for (const file of process.argv.slice(2)) {
  try {
    results[file] = { ok: true, value: await judge(file) };
  } catch (e) {
    results[file] = { ok: false, error: String((e && e.message) || e) };
  }
}
// Exit only once stdout is flushed (a pipe write is asynchronous; large reports were cut off).
process.stdout.write(JSON.stringify(results), () => process.exit(0));
