// The official TypeScript MCP client (npm `@modelcontextprotocol/sdk`, version pinned in
// package.json and package-lock.json) against a running oauth-mcp: discovery (RFC 9728,
// RFC 8414), dynamic registration (RFC 7591), the authorization code flow with PKCE through
// the real login and consent form, an MCP `tools/list` and `tools/call`, then a refresh (the
// server runs with a short access-token lifetime: the SDK's next call gets 401 and must
// refresh).
//
// Run by .ci/interop.sh:  node ts_client.mjs URL USERNAME PASSWORD [DOCUMENT_URL]
// With DOCUMENT_URL the client identifies itself by that client ID metadata document
// (`clientMetadataUrl`) instead of registering.
//
// `redirectToAuthorization` plays the user's browser: it follows the authorization URL, fills
// the login and consent form (hidden fields, `username`, `password`, `action=approve`) and
// reads the code from the 303 to the redirect URI, which is never contacted. Exits non-zero
// on any failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const REDIRECT_URI = "http://127.0.0.1:53683/callback";
const [url, username, password, document] = process.argv.slice(2);
if (!password) {
  console.error("usage: node ts_client.mjs URL USERNAME PASSWORD [DOCUMENT_URL]");
  process.exit(2);
}

/** The first form of a page: its action and its input fields (hidden, text, password). */
function readForm(html) {
  const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return null;
  const attr = (tag, name) => {
    const m = new RegExp(`\\b${name}\\s*=\\s*"([^"]*)"`, "i").exec(tag);
    return m ? unescapeHtml(m[1]) : null;
  };
  const fields = {};
  for (const input of form[2].matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(input[0], "name");
    const type = (attr(input[0], "type") || "text").toLowerCase();
    if (name && ["hidden", "text", "password"].includes(type)) fields[name] = attr(input[0], "value") || "";
  }
  return { action: attr(form[1], "action") || "", fields };
}

function unescapeHtml(s) {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&#x27;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

/** Set-Cookie headers of a response as one Cookie header value. */
function cookiesOf(response) {
  return response.headers
    .getSetCookie()
    .map((c) => c.split(";")[0])
    .join("; ");
}

class Provider {
  constructor() {
    this.client = undefined;
    this.saved = undefined;
    this.verifier = undefined;
    this.code = undefined;
    this.signIns = 0;
    this.tokenSets = 0;
  }
  get redirectUrl() {
    return REDIRECT_URI;
  }
  get clientMetadataUrl() {
    return document;
  }
  get clientMetadata() {
    return {
      client_name: "interop: typescript sdk",
      redirect_uris: [REDIRECT_URI],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info) {
    this.client = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
    this.tokenSets += 1;
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
  async redirectToAuthorization(authorizationUrl) {
    this.signIns += 1;
    const page = await fetch(authorizationUrl, { redirect: "manual" });
    const html = await page.text();
    if (page.status !== 200) throw new Error(`/authorize answered ${page.status}: ${html.slice(0, 500)}`);
    const form = readForm(html);
    if (!form || !("csrf" in form.fields)) throw new Error(`no login form with a csrf field: ${html.slice(0, 500)}`);
    const body = new URLSearchParams({ ...form.fields, username, password, action: "approve" });
    const answer = await fetch(new URL(form.action, authorizationUrl), {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded", cookie: cookiesOf(page) },
      body,
    });
    const location = answer.headers.get("location") || "";
    if (answer.status !== 303 || !location.startsWith(REDIRECT_URI)) {
      throw new Error(`the consent form answered ${answer.status} to ${location}: ${(await answer.text()).slice(0, 500)}`);
    }
    const code = new URL(location).searchParams.get("code");
    if (!code) throw new Error(`no code in the redirect: ${location}`);
    this.code = code;
  }
}

const provider = new Provider();
const newTransport = () => new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
const client = new Client({ name: "oauth-mcp-interop", version: "1.0.0" });

let transport = newTransport();
try {
  await client.connect(transport);
  throw new Error("connected without signing in");
} catch (e) {
  if (!(e instanceof UnauthorizedError) || !provider.code) throw e;
  await transport.finishAuth(provider.code);
}
transport = newTransport();
await client.connect(transport);
console.log(`connected: protocol ${transport.protocolVersion}`);

const tools = (await client.listTools()).tools.map((t) => t.name);
console.log(`tools/list: ${JSON.stringify(tools)}`);
if (!tools.includes("echo")) throw new Error(`the demo server's echo tool is missing: ${tools}`);
const first = await client.callTool({ name: "echo", arguments: { text: "before refresh" } });
if (first.isError) throw new Error(`tools/call failed: ${JSON.stringify(first)}`);
// The server's access tokens live 2 s here: the next call gets 401 and must refresh.
await new Promise((r) => setTimeout(r, 3000));
const second = await client.callTool({ name: "echo", arguments: { text: "after refresh" } });
if (second.isError) throw new Error(`tools/call after the refresh failed: ${JSON.stringify(second)}`);
await client.close();

if (!provider.client?.client_id) throw new Error("the SDK did not register");
if (document && provider.client.client_id !== document) {
  throw new Error(`the SDK registered ${provider.client.client_id} instead of using the document ${document}`);
}
if (provider.signIns !== 1) throw new Error(`expected one sign-in, the SDK asked for ${provider.signIns}`);
if (provider.tokenSets < 2) throw new Error(`expected a refresh, the SDK stored tokens ${provider.tokenSets} time(s)`);
console.log(
  `ok: ${document ? "document" : "registered"} ${provider.client.client_id} (${provider.client.token_endpoint_auth_method ?? "none"}), one sign-in, ` +
    `${provider.tokenSets} token sets (refreshed), tools called before and after`,
);
