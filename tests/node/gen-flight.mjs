// Renders Flight payloads with React's own server (react-server-dom-webpack 19) so the Python tests
// rewrite real wire bytes: T rows (long text, non-ASCII), typed-array / ArrayBuffer binary rows,
// Maps, Sets, Dates, BigInts, nested promises (streamed rows) and origin URLs everywhere.
// Usage: NODE_ENV=production node --conditions react-server gen-flight.mjs OUT_DIR ORIGIN_URL
import { createElement as h } from 'react';
import { renderToPipeableStream } from 'react-server-dom-webpack/server';
import { Writable } from 'node:stream';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [outDir, origin] = process.argv.slice(2);
if (!outDir || !origin) {
  console.error('usage: gen-flight.mjs OUT_DIR ORIGIN_URL');
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
const host = origin.replace(/^https?:\/\//, '');

const delay = (ms, v) => new Promise((r) => setTimeout(() => r(v), ms));

function longText(n, withUrls) {
  const parts = [];
  for (let i = 0; i < n; i++) {
    parts.push(
      withUrls
        ? `Teil ${i}: Grüße ☕ 𝄞 ${origin}/a/${i} //${host}/b https:\\/\\/${host}/c "q" \n<br>`
        : `plain ${i} ünïcödé 日本語 text without references`,
    );
  }
  return parts.join(' ');
}

const models = {
  'elements': h('div', { className: 'x' },
    h('a', { href: `${origin}/page`, id: 'l1' }, 'link'),
    h('img', { src: `${origin}/img.png`, srcSet: `${origin}/a.png 1x, ${origin}/b.png 2x` }),
    h('p', null, longText(40, true)),
    h('p', null, longText(30, false)),
  ),
  'values': {
    url: `${origin}/x?y=1`,
    protocolRelative: `//${host}/z`,
    notOurs: `https://${host}.evil.example/x`,
    sub: `https://cdn.${host}/x`,
    map: new Map([[`${origin}/k`, `${origin}/v`], ['n', 1]]),
    set: new Set([`${origin}/s`, 'ü']),
    date: new Date(1700000000000),
    big: 12345678901234567890n,
    neg0: -0,
    inf: Infinity,
    undef: undefined,
    text: longText(60, true),
    texts: [longText(5, true), longText(8, true), 'short'],
  },
  'binary': {
    u8: new Uint8Array([0, 10, 58, 84, 255, 0x0a, 0x2c]),
    i8: new Int8Array([-1, 2, -3]),
    u8c: new Uint8ClampedArray([1, 2, 3, 10]),
    i16: new Int16Array([-2, 10, 3000]),
    u16: new Uint16Array([65535, 10]),
    i32: new Int32Array([-5, 0x0a0a0a0a]),
    u32: new Uint32Array([4294967295, 10]),
    f32: new Float32Array([1.5, -2.25]),
    f64: new Float64Array([Math.PI, 1e300]),
    bi64: new BigInt64Array([-1n, 10n]),
    bu64: new BigUint64Array([2n ** 63n, 10n]),
    buf: new Uint8Array([10, 10, 10, 49, 58, 84, 51, 44]).buffer,
    view: new DataView(new Uint8Array([1, 2, 3, 4, 10]).buffer),
    after: `${origin}/after-binary`,
    long: longText(10, true),
  },
  'streamed': {
    first: `${origin}/first`,
    later: delay(5, { url: `${origin}/later`, text: longText(20, true) }),
    nested: delay(10, [delay(5, `${origin}/deep`), new Uint8Array([10, 84, 58])]),
    el: h('section', null, delay(15, h('a', { href: `${origin}/lazy` }, longText(3, true)))),
  },
};

function render(model) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const sink = new Writable({
      write(chunk, _enc, cb) { chunks.push(Buffer.from(chunk)); cb(); },
      final(cb) { resolve(Buffer.concat(chunks)); cb(); },
    });
    const { pipe } = renderToPipeableStream(model, {}, { onError: reject });
    pipe(sink);
  });
}

for (const [name, model] of Object.entries(models)) {
  writeFileSync(join(outDir, `${name}.flight`), await render(model));
}
console.log(JSON.stringify(Object.keys(models)));
