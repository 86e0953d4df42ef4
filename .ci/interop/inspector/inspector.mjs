// MCP Inspector (web mode, pinned in package.json) connects to oauth-mcp through its own
// OAuth flow, driven the way a person does it, in headless Chromium (Debian's package,
// through playwright-core, which never downloads a browser): open the Inspector's page,
// switch the server on, which registers a client and sends the browser to /authorize; sign
// in and approve on oauth-mcp's page; back on the Inspector, wait for "Connected" and open
// the Tools tab, which must list the demo server's tools.
//
// Run by .ci/interop.sh:  node inspector.mjs INSPECTOR_URL USERNAME PASSWORD SCREENSHOT_DIR
// INSPECTOR_URL carries the Inspector's API token (?MCP_INSPECTOR_API_TOKEN=...). Exits
// non-zero on any failure, with a screenshot of the page it failed on.
import { chromium } from "playwright-core";

const [inspectorUrl, username, password, shots] = process.argv.slice(2);
if (!shots) {
  console.error("usage: node inspector.mjs INSPECTOR_URL USERNAME PASSWORD SCREENSHOT_DIR");
  process.exit(2);
}
const EXPECTED_TOOLS = ["add", "echo", "whoami"];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const page = await browser.newPage();
page.setDefaultTimeout(30000);
const step = (s) => console.log(`inspector: ${s}`);
try {
  await page.goto(inspectorUrl);
  // The server list's switch (a Mantine switch: its track covers the input, so check it
  // without the pointer hit test).
  await page.getByRole("switch", { name: /Connect or disconnect/ }).check({ force: true });
  await page.waitForURL(/\/authorize\?/);
  step(`sent to ${page.url().split("?")[0]} (client ${new URL(page.url()).searchParams.get("client_id")})`);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Approve" }).click();
  await page.waitForURL((u) => u.origin === new URL(inspectorUrl).origin);
  step(`back at ${page.url().split("?")[0]}`);
  await page.getByText("Connected", { exact: true }).waitFor();
  step("connected");
  await page.getByText("Tools", { exact: true }).first().click();
  for (const tool of EXPECTED_TOOLS) {
    await page.getByText(tool, { exact: true }).first().waitFor();
  }
  step(`tools listed: ${EXPECTED_TOOLS.join(", ")} among them`);
  await page.screenshot({ path: `${shots}/inspector-tools.png`, fullPage: true });
} catch (e) {
  await page.screenshot({ path: `${shots}/inspector-failure.png`, fullPage: true }).catch(() => {});
  console.error(`inspector: FAILED at ${page.url()}: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
