// Drives Debian chromium (playwright-core, never a downloaded browser) through sluicegate in front
// of the Next.js fixture app and prints one JSON report for the Python test to assert on.
// Usage: node browser.mjs PROXY_URL ORIGIN_URL
import { chromium } from 'playwright-core';

const [proxy, origin] = process.argv.slice(2);
const originHost = new URL(origin).host;
const proxyHost = new URL(proxy).host;
const report = { pages: {}, requests: [], originRequests: [], rscRequests: [], rscResponses: [], navigation: {} };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext();
const page = await context.newPage();
let errors = [];
page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`); });
page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
page.on('request', (r) => {
  const u = new URL(r.url());
  const entry = { url: r.url(), type: r.resourceType(), rsc: r.headers()['rsc'] || null, headers: r.headers() };
  report.requests.push(entry);
  if (u.host === originHost) report.originRequests.push(entry);
  if (entry.rsc) report.rscRequests.push(entry);
});

async function visit(path, check) {
  errors = [];
  const res = await page.goto(proxy + path, { waitUntil: 'load' });
  await page.waitForSelector('html[data-hydrated="true"]', { timeout: 15000 });
  await page.waitForLoadState('networkidle');
  const info = { status: res.status(), finalUrl: page.url(), ...(check ? await check() : {}) };
  await page.waitForTimeout(200);
  info.errors = errors;
  report.pages[path] = info;
}

const attr = (sel, name) => page.$eval(sel, (el, n) => el.getAttribute(n), name);

await visit('/', async () => {
  const before = await page.textContent('#increment');
  await page.click('#increment');
  await page.click('#increment');
  await page.waitForFunction(() => document.querySelector('#increment').textContent.includes('2'));
  return {
    before, after: await page.textContent('#increment'),
    absLink: await attr('#abs-link', 'href'),
    profileLink: await attr('#profile-link', 'href'),
    avatar: await attr('#avatar', 'src'),
    pixelSrcset: await attr('#pixel', 'srcset'),
    formAction: await attr('#contact-form', 'action'),
    storyAttr: await attr("#story-attr", "data-story"),
    story: await page.textContent('#story'),
    homeText: await page.textContent('#home-text'),
    navSite: await page.textContent('#nav-site'),
    footer: await page.textContent('#site-footer'),
    title: await page.title(),
    description: await attr('meta[name="description"]', 'content'),
    pageJson: await page.textContent('#page-json'),
    api: await page.evaluate(async () => (await fetch('/api/data')).json()),
  };
});
await visit('/stream', async () => ({
  c: await page.textContent('#slow-c a'),
  cWhere: await page.textContent('#slow-c .where'),
  cHref: await attr('#slow-c a', 'href'),
}));
await visit('/go', async () => ({ title: await page.textContent('#about-title') }));
await visit('/about', async () => ({ text: await page.textContent('#about-text') }));
await visit('/people/zoe', async () => ({ text: await page.textContent('#person-text') }));
await visit('/legacy', async () => {
  await page.click('#legacy-inc');
  await page.waitForFunction(() => document.querySelector('#legacy-inc').textContent.includes('1'));
  return {
    title: await page.textContent('#legacy-title'),
    photoSrcset: await attr('#legacy-photo', 'srcset'),
    photoLoaded: await page.$eval('#legacy-photo', (img) => img.complete && img.naturalWidth > 0),
    nextData: await page.evaluate(() => window.__NEXT_DATA__ && window.__NEXT_DATA__.props.pageProps.post),
  };
});
await visit('/big', async () => {
  await page.click('#increment');
  await page.waitForFunction(() => document.querySelector('#increment').textContent.includes('1'));
  return { profileLink: await attr('#profile-link', 'href'), storyLen: (await attr('#story-attr', 'data-story')).length };
});

// Client-side navigation with next/link: RSC fetches, no new document.
errors = [];
await page.goto(proxy + '/', { waitUntil: 'load' });
await page.waitForSelector('html[data-hydrated="true"]');
await page.waitForLoadState('networkidle');
const docsBefore = report.requests.filter((r) => r.type === 'document').length;
const rscBefore = report.rscRequests.length;
await page.evaluate(() => { window.__marker = 'same-document'; });
await page.click('#nav-about');
await page.waitForSelector('#about-title', { timeout: 15000 });
await page.click('#nav-stream');
await page.waitForSelector('#slow-c', { timeout: 15000 });
await page.click('#nav-home');
await page.waitForSelector('#increment', { timeout: 15000 });
await page.click('#increment');
await page.waitForFunction(() => document.querySelector('#increment').textContent.includes('1'));
await page.waitForTimeout(200);
report.navigation = {
  marker: await page.evaluate(() => window.__marker),
  documents: report.requests.filter((r) => r.type === 'document').length - docsBefore,
  rscFetches: report.rscRequests.slice(rscBefore),
  url: page.url(),
  errors,
};
await browser.close();

// Replay each RSC request the browser made (same URL and router headers) with Node's fetch, to the
// proxy and to the origin, for raw bodies (CDP hands text bodies back re-decoded, not as bytes).
const seen = new Set();
for (const r of report.rscRequests) {
  if (seen.has(r.url)) continue;
  seen.add(r.url);
  const headers = Object.fromEntries(Object.entries(r.headers).filter(([k]) => k === 'rsc' || k.startsWith('next-')));
  const grab = async (url) => {
    const res = await fetch(url, { headers, redirect: 'manual' });
    return { status: res.status, headers: Object.fromEntries(res.headers), body: Buffer.from(await res.arrayBuffer()).toString('base64') };
  };
  const viaProxy = await grab(r.url);
  const direct = await grab(r.url.replace(proxy, origin));
  report.rscResponses.push({ url: r.url, proxy: viaProxy, origin: direct });
}
report.proxyHost = proxyHost;
process.stdout.write(JSON.stringify(report));
