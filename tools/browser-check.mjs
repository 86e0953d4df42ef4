// Drives the login and consent page of a running oauth-mcp server in headless Chromium, with
// the keyboard only, at a desktop and a phone width. Started by tools/browser-check.sh, which
// installs playwright-core, starts the server and sets the environment:
//
//   OAUTH_MCP_URL   the server, e.g. http://127.0.0.1:8311 (demo client and user seeded)
//   PLAYWRIGHT_DIR  a directory whose node_modules holds playwright-core
//   CHROMIUM        the browser binary (default /usr/bin/chromium)
//   SCREENSHOT_DIR  where screenshots go (default /tmp/oauth-mcp-browser-check)
//
// Prints one line per check and exits 1 if any failed.

import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const BASE = (process.env.OAUTH_MCP_URL || 'http://127.0.0.1:8311').replace(/\/$/, '');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOT_DIR || '/tmp/oauth-mcp-browser-check';
const require = createRequire(join(process.env.PLAYWRIGHT_DIR || process.cwd(), 'package.json'));
const { chromium } = require('playwright-core');

const CLIENT_ID = 'demo_client';
const CLIENT_SECRET = 'demo_secret';
const USER = 'demo_user';
const PASSWORD = 'demo_password';
const VIEWPORTS = [
  { name: 'desktop', width: 1280, height: 800 },
  { name: 'narrow', width: 360, height: 740 },
];

let failures = 0;
function check(ok, what, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${!ok && detail ? `: ${detail}` : ''}`);
  if (!ok) failures += 1;
  return ok;
}

const b64url = (buf) => buf.toString('base64url');

/// A fresh authorization request: URL plus what the client keeps (verifier, state).
function authorizationRequest(redirectUri, clientId = CLIENT_ID, extra = {}) {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const state = b64url(randomBytes(12));
  const url = new URL(`${BASE}/authorize`);
  for (const [k, v] of Object.entries({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: 'mcp:read mcp:write',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource: `${BASE}/mcp`,
    ...extra,
  })) {
    url.searchParams.set(k, v);
  }
  return { url: url.toString(), verifier, state };
}

/// Pages the loopback server below serves besides the callback: path -> { cookies, html }.
/// A page there plays the attacker of issue 11: another port on the same host is the same
/// site, and cookies are not port-isolated.
const attackPages = new Map();

/// A loopback "client" that only records where the browser was sent (RFC 8252 §7.3: any port).
async function startCallbackServer() {
  const server = createServer((req, res) => {
    const attack = attackPages.get(new URL(req.url, 'http://x').pathname);
    if (attack) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'set-cookie': attack.cookies });
      res.end(attack.html);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html lang="en"><title>callback</title><p>callback reached</p></html>');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, redirectUri: `http://127.0.0.1:${server.address().port}/callback` };
}

const escapeHtml = (v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/// A signed-in browser visits a page on another localhost port that overwrites the CSRF
/// cookie with a value of its choosing and posts the consent form with that value (one click
/// on an innocent-looking button). The server must refuse it: no code reaches the redirect URI.
async function checkForgedConsent(page, context, redirectUri, where) {
  const request = authorizationRequest(redirectUri);
  await page.goto(request.url);
  // What the attacker can know: the form's parameters are those of his own request; only the
  // CSRF value is secret, and he substitutes his own.
  const fields = await page.evaluate(() => [...document.forms[0].querySelectorAll('input[type=hidden]')]
    .map((i) => [i.name, i.value]));
  const forged = b64url(randomBytes(32));
  const csrfCookies = (await context.cookies(BASE)).filter((c) => /csrf/i.test(c.name));
  const inputs = fields
    .map(([n, v]) => `<input type="hidden" name="${escapeHtml(n)}" value="${escapeHtml(/csrf/i.test(n) ? forged : v)}">`)
    .join('');
  attackPages.set('/prize', {
    cookies: csrfCookies.map((c) => `${c.name}=${forged}; Path=/`),
    html: `<!doctype html><html lang="en"><title>prize</title><form method="post" action="${BASE}/authorize/decision">${inputs}<button id="go" name="action" value="approve">Claim your prize</button></form></html>`,
  });
  await page.goto(`${new URL(redirectUri).origin}/prize`);
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#go')]);
  const landed = new URL(page.url());
  check(!(`${landed.origin}${landed.pathname}` === redirectUri && landed.searchParams.has('code')),
    `${where}: no code for a consent posted from another localhost port`, page.url());
  check(response.status() === 403, `${where}: refused with 403`, response.status());
}

/// Presses Tab until `selector` has focus; answers the ids/values focused on the way.
async function tabTo(page, selector, max = 12) {
  const seen = [];
  for (let i = 0; i < max; i += 1) {
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) {
      return seen;
    }
    await page.keyboard.press('Tab');
    seen.push(await page.evaluate(() => {
      const el = document.activeElement;
      return el ? el.id || el.value || el.textContent.trim() || el.tagName : 'none';
    }));
  }
  throw new Error(`Tab never reached ${selector} (focused: ${seen.join(', ')})`);
}

/// The focused element draws an outline of at least 2px that is not transparent.
async function focusIsVisible(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { ok: false, detail: 'nothing focused' };
    const s = getComputedStyle(el);
    const width = parseFloat(s.outlineWidth);
    const ok = s.outlineStyle !== 'none' && width >= 2 && !/rgba\(.*, 0\)$/.test(s.outlineColor);
    return { ok, detail: `${el.tagName}#${el.id} outline ${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor}` };
  });
}

/// Layout facts: horizontal overflow, smallest text, smallest button.
async function layout(page) {
  return page.evaluate(() => {
    const visible = (el) => {
      const r = el.getBoundingClientRect();
      return r.width > 0 && r.height > 0;
    };
    const texts = [...document.querySelectorAll('h1,p,li,label,button,a,input,strong,code')].filter(visible);
    const buttons = [...document.querySelectorAll('button,input:not([type=hidden])')].filter(visible);
    const offRight = texts.filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5);
    return {
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
      minFont: Math.min(...texts.map((el) => parseFloat(getComputedStyle(el).fontSize))),
      minTarget: Math.min(...buttons.map((el) => el.getBoundingClientRect().height)),
      offRight: offRight.map((el) => el.tagName).join(','),
    };
  });
}

async function checkLayout(page, where) {
  const l = await layout(page);
  check(l.scrollWidth <= l.innerWidth && !l.offRight, `${where}: no horizontal scrolling`,
    `scrollWidth ${l.scrollWidth} > ${l.innerWidth} (${l.offRight})`);
  check(l.minFont >= 13, `${where}: text at least 13px`, `smallest ${l.minFont}px`);
  if (Number.isFinite(l.minTarget)) {
    check(l.minTarget >= 24, `${where}: controls at least 24px high`, `smallest ${l.minTarget}px`);
  }
}

/// What a page must have whatever state it is in: title, language, viewport, headers.
async function checkDocument(page, response, where) {
  const h = response.headers();
  check((h['content-type'] || '').startsWith('text/html'), `${where}: text/html`, h['content-type']);
  const csp = h['content-security-policy'] || '';
  check(/frame-ancestors 'none'/.test(csp) || h['x-frame-options'] === 'DENY',
    `${where}: framing forbidden`, `CSP ${csp}, XFO ${h['x-frame-options']}`);
  check(/default-src 'none'/.test(csp), `${where}: CSP default-src 'none'`, csp);
  check(/no-store/.test(h['cache-control'] || ''), `${where}: Cache-Control no-store`, h['cache-control']);
  check(h['x-content-type-options'] === 'nosniff', `${where}: nosniff`);
  const doc = await page.evaluate(() => ({
    title: document.title,
    lang: document.documentElement.lang,
    viewport: document.querySelector('meta[name=viewport]')?.content || '',
    h1: document.querySelectorAll('h1').length,
    main: document.querySelectorAll('main').length,
  }));
  check(doc.title.trim().length > 3, `${where}: <title> "${doc.title}"`);
  check(doc.lang === 'en', `${where}: <html lang>`, doc.lang);
  check(/width=device-width/.test(doc.viewport), `${where}: viewport meta`, doc.viewport);
  check(doc.h1 === 1 && doc.main === 1, `${where}: one <main> and one <h1>`);
}

/// Every visible form control has a label, and the sign-in fields the right autocomplete.
async function checkForm(page, where, { password }) {
  const f = await page.evaluate(() => {
    const controls = [...document.querySelectorAll('input:not([type=hidden]),button')];
    const unlabelled = controls
      .filter((el) => el.tagName === 'INPUT' ? el.labels.length === 0 : !el.textContent.trim())
      .map((el) => el.name || el.id);
    const u = document.getElementById('username');
    const p = document.getElementById('password');
    return {
      unlabelled,
      username: u && { autocomplete: u.autocomplete, label: u.labels[0]?.textContent, required: u.required },
      password: p && { autocomplete: p.autocomplete, label: p.labels[0]?.textContent, type: p.type },
      method: document.forms[0]?.method,
      action: document.forms[0]?.getAttribute('action'),
    };
  });
  check(f.unlabelled.length === 0, `${where}: every control has a label or text`, f.unlabelled.join(','));
  check(f.method === 'post' && f.action === '/authorize/decision', `${where}: form posts to /authorize/decision`);
  if (password) {
    check(f.username?.autocomplete === 'username', `${where}: username autocomplete=username`, JSON.stringify(f.username));
    check(f.password?.autocomplete === 'current-password' && f.password?.type === 'password',
      `${where}: password autocomplete=current-password`, JSON.stringify(f.password));
  } else {
    check(!f.password, `${where}: no password field when signed in`);
  }
}

/// Presses `key` and waits for the navigation it causes; answers the final response.
async function pressAndNavigate(page, key) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press(key)]);
  return response;
}

/// The browser is at the redirect URI with code, state and iss (RFC 9207) or an error.
function checkCallback(page, request, redirectUri, issuer, where, expectError) {
  const url = new URL(page.url());
  const q = url.searchParams;
  check(`${url.origin}${url.pathname}` === redirectUri, `${where}: redirected to the redirect URI`, page.url());
  check(q.get('state') === request.state, `${where}: state echoed`, q.get('state'));
  check(q.get('iss') === issuer, `${where}: iss is the issuer`, q.get('iss'));
  if (expectError) {
    check(q.get('error') === expectError && !q.has('code'), `${where}: error=${expectError}, no code`, page.url());
  } else {
    check((q.get('code') || '').length >= 43 && !q.has('error'), `${where}: code present`, page.url());
  }
  return q.get('code');
}

async function exchange(code, verifier, redirectUri, where) {
  const resp = await fetch(`${BASE}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: redirectUri }),
  });
  const body = await resp.json();
  check(resp.status === 200 && typeof body.access_token === 'string', `${where}: code exchanged for tokens`,
    `${resp.status} ${JSON.stringify(body)}`);
}

/// Only the server and the callback are ever contacted: no external assets.
function watchRequests(context, allowed) {
  const foreign = [];
  context.on('request', (req) => {
    const origin = new URL(req.url()).origin;
    if (!allowed.includes(origin)) foreign.push(req.url());
  });
  return foreign;
}

async function runViewport(browser, vp, redirectUri, issuer) {
  const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${vp.name}-${name}.png`), fullPage: true });
  const opts = { viewport: { width: vp.width, height: vp.height }, javaScriptEnabled: false };
  const allowed = [new URL(BASE).origin, new URL(redirectUri).origin];

  // 1. Password login with a wrong password first, then the right one; keyboard only.
  let context = await browser.newContext(opts);
  let foreign = watchRequests(context, allowed);
  let page = await context.newPage();
  let request = authorizationRequest(redirectUri);
  let response = await page.goto(request.url);
  let where = `${vp.name} login page`;
  check(response.status() === 200, `${where}: 200`, response.status());
  await checkDocument(page, response, where);
  await checkForm(page, where, { password: true });
  await checkLayout(page, where);
  const csp = response.headers()['content-security-policy'] || '';
  check(csp.includes(`form-action 'self' ${new URL(redirectUri).origin}`),
    `${where}: CSP form-action allows only this server and the redirect URI`, csp);
  check(await page.evaluate(() => document.activeElement?.id === 'username'), `${where}: username focused on load`);
  await shot(page, 'login');

  await tabTo(page, '#username');
  const order = await tabTo(page, 'button[value=deny]');
  check(order.join(',') === 'password,approve,deny', `${where}: Tab order username, password, Approve, Deny`, order.join(','));
  await page.keyboard.press('Shift+Tab');
  check(await page.evaluate(() => document.activeElement?.value === 'approve'), `${where}: Shift+Tab goes back`);
  let focus = await focusIsVisible(page);
  check(focus.ok, `${where}: focus outline on Approve`, focus.detail);
  await shot(page, 'focus-approve');

  await tabTo(page, '#username');
  focus = await focusIsVisible(page);
  check(focus.ok, `${where}: focus outline on username`, focus.detail);
  await page.keyboard.type(USER);
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement?.id === 'password'), `${where}: Tab moves to password`);
  await page.keyboard.type('not-the-password');
  response = await pressAndNavigate(page, 'Enter');

  where = `${vp.name} wrong password`;
  check(response.status() === 400, `${where}: form shown again (400)`, response.status());
  await checkDocument(page, response, where);
  await checkForm(page, where, { password: true });
  await checkLayout(page, where);
  const err = await page.evaluate(() => {
    const alert = document.querySelector('[role=alert]');
    const u = document.getElementById('username');
    return {
      text: alert?.textContent || '',
      visible: !!alert && alert.getBoundingClientRect().height > 0,
      title: document.title,
      focused: document.activeElement?.id,
      username: u?.value,
      describedBy: document.getElementById('password')?.getAttribute('aria-describedby'),
      alertId: alert?.id,
    };
  });
  check(err.visible && /incorrect/i.test(err.text), `${where}: visible error message`, err.text);
  check(/error/i.test(err.title), `${where}: title says there is an error`, err.title);
  check(err.username === USER, `${where}: username kept`, err.username);
  check(err.focused === 'password', `${where}: password focused`, err.focused);
  check(!!err.alertId && err.describedBy === err.alertId, `${where}: password described by the error`, err.describedBy);
  await shot(page, 'wrong-password');

  await tabTo(page, '#password');
  await page.keyboard.type(PASSWORD);
  response = await pressAndNavigate(page, 'Enter');
  where = `${vp.name} approve after login`;
  const redirect = response.request().redirectedFrom();
  const redirectResponse = redirect && (await redirect.response());
  check(redirectResponse?.status() === 303, `${where}: 303 from /authorize/decision`, redirectResponse?.status());
  check(/no-store/.test(redirectResponse?.headers()['cache-control'] || ''), `${where}: redirect not cached`);
  let code = checkCallback(page, request, redirectUri, issuer, where);
  if (code) await exchange(code, request.verifier, redirectUri, where);

  // 2. Signed in now: consent only, approved with Enter on the Approve button.
  request = authorizationRequest(redirectUri);
  response = await page.goto(request.url);
  where = `${vp.name} consent page`;
  await checkDocument(page, response, where);
  await checkForm(page, where, { password: false });
  await checkLayout(page, where);
  check(/Signed in as/.test(await page.textContent('main')), `${where}: says who is signed in`);
  await shot(page, 'consent');
  const consentOrder = await tabTo(page, 'button[value=deny]');
  check(consentOrder.slice(-3).join(',') === 'Use another account,approve,deny',
    `${where}: Tab order link, Approve, Deny`, consentOrder.join(','));
  await page.keyboard.press('Shift+Tab');
  focus = await focusIsVisible(page);
  check(focus.ok, `${where}: focus outline on Approve`, focus.detail);
  response = await pressAndNavigate(page, 'Enter');
  code = checkCallback(page, request, redirectUri, issuer, `${vp.name} keyboard approve`);
  if (code) await exchange(code, request.verifier, redirectUri, `${vp.name} keyboard approve`);

  // 2b. Signed in: a forged consent from another origin on the same site is refused.
  await checkForgedConsent(page, context, redirectUri, `${vp.name} cross-origin consent`);

  // 3. Signed in: Deny with Space.
  request = authorizationRequest(redirectUri);
  await page.goto(request.url);
  await tabTo(page, 'button[value=deny]');
  focus = await focusIsVisible(page);
  check(focus.ok, `${vp.name} consent page: focus outline on Deny`, focus.detail);
  await pressAndNavigate(page, 'Space');
  checkCallback(page, request, redirectUri, issuer, `${vp.name} keyboard deny (signed in)`, 'access_denied');
  check(foreign.length === 0, `${vp.name}: nothing fetched from other origins`, foreign.join(' '));
  await context.close();

  // 4. Not signed in: Deny straight away, with empty required fields.
  context = await browser.newContext(opts);
  foreign = watchRequests(context, allowed);
  page = await context.newPage();
  request = authorizationRequest(redirectUri);
  await page.goto(request.url);
  await tabTo(page, 'button[value=deny]');
  await pressAndNavigate(page, 'Enter');
  checkCallback(page, request, redirectUri, issuer, `${vp.name} keyboard deny (password page)`, 'access_denied');

  // 5. A long client name and a long scope list must not widen the page.
  const reg = await fetch(`${BASE}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: `AnAgentWithAnUnreasonablyLongNameThatHasNoSpacesOrHyphensAtAll_${vp.name}`,
      redirect_uris: [redirectUri],
      token_endpoint_auth_method: 'none',
    }),
  });
  const client = await reg.json();
  if (check(reg.status === 201, `${vp.name}: registered a long-named client`, JSON.stringify(client))) {
    request = authorizationRequest(redirectUri, client.client_id);
    response = await page.goto(request.url);
    where = `${vp.name} long client name`;
    check(response.status() === 200, `${where}: 200`, response.status());
    await checkLayout(page, where);
    await shot(page, 'long-name');
  }

  // 6. The error page (unknown client) is readable too.
  response = await page.goto(authorizationRequest(redirectUri, 'no_such_client').url);
  where = `${vp.name} error page`;
  check(response.status() === 400, `${where}: 400`, response.status());
  await checkDocument(page, response, where);
  await checkLayout(page, where);
  check(await page.isVisible('[role=alert]'), `${where}: message visible`);
  await shot(page, 'error-page');
  check(foreign.length === 0, `${vp.name}: nothing fetched from other origins`, foreign.join(' '));
  await context.close();
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const meta = await (await fetch(`${BASE}/.well-known/oauth-authorization-server`)).json();
  const issuer = meta.issuer;
  const { server, redirectUri } = await startCallbackServer();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  console.log(`Chromium ${browser.version()} against ${BASE}, redirect URI ${redirectUri}`);
  try {
    for (const vp of VIEWPORTS) {
      console.log(`--- ${vp.name} ${vp.width}x${vp.height}`);
      try {
        await runViewport(browser, vp, redirectUri, issuer);
      } catch (e) {
        check(false, `${vp.name}: flow completed`, e.stack || String(e));
      }
    }
  } finally {
    await browser.close();
    server.close();
  }
  console.log(failures === 0 ? 'all browser checks passed' : `${failures} browser check(s) failed`);
  console.log(`screenshots: ${SHOTS}`);
  process.exit(failures === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
