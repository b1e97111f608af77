/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core against two nodes
 * this test starts in-process (a worker with the built-in model, and a peer it dials). The
 * page must load without console errors, draw the supervision tree and the peer, and — unlocked
 * with the operator token — stream a typed prompt's tokens onto the page and verify the
 * receipt in the page. A screenshot goes to `tmp/test-output/` (ignored by git).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, OUTPUT_DIR, requireChromium, startTestNode } from "./_helpers.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";

Deno.test({
  name:
    "dashboard in chromium: tree and peers drawn, a typed prompt streams its tokens, the receipt is verified in the page",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await requireChromium();
    const dir = await Deno.makeTempDir();
    const worker = await startTestNode(join(dir, "worker"), {
      network: { listen: { port: 0 } },
    });
    const network = worker.system.lookup<NetworkMessage>("node/network")!;
    const address = await network.ask<Deno.NetAddr>({ type: "listening" });
    const peer = await startTestNode(join(dir, "peer"), {
      roles: { inference: false, prover: false, storage: false },
      network: {
        listening: false,
        peers: [`127.0.0.1:${address.port}`],
      },
    });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const problems: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(`console: ${m.text()}`);
      });
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      await page.goto(`${worker.url}/`);

      // The supervision tree, from the node's own tree.
      await page.locator('#tree li[data-name="node/inference"]').waitFor();
      for (const actor of ["node/sup", "node/storage", "node/prover", "node/validator"]) {
        assert.equal(await page.locator(`#tree li[data-name="${actor}"]`).count(), 1, actor);
      }
      // The peer, in the picture and the table, with its roles from its signed hello.
      const peerKey = Array.from(peer.identity.publicKey, (b) => b.toString(16).padStart(2, "0"))
        .join("");
      await page.locator(`#network g[data-peer="${peerKey}"]`).waitFor();
      await page.locator(`#peers tr[data-peer="${peerKey}"]`).waitFor();
      await page.locator(`#peers tr[data-peer="${peerKey}"]`, { hasText: "validator" }).waitFor();

      // Read-only until unlocked: the run button is disabled.
      assert.equal(await page.locator("#run").isDisabled(), true);
      const token = (await Deno.readTextFile(join(dir, "worker", "operator.token"))).trim();
      await page.fill("#token", token);
      await page.click("#auth-form button");
      await page.locator("#access", { hasText: "operator" }).waitFor();

      // Count the updates of the output as tokens arrive: streaming, not one final write.
      // (A string: this runs in the page, whose DOM types Deno's checker does not load.)
      await page.evaluate(`
        globalThis.__updates = 0;
        new MutationObserver(() => globalThis.__updates++).observe(
          document.getElementById("prompt-output"),
          { childList: true, characterData: true, subtree: true },
        );
      `);
      await page.fill("#prompt", "Once upon a time");
      await page.fill("#max-tokens", "24");
      await page.click("#run");
      await page.locator('#receipt-status[data-verified="true"]').waitFor();
      const output = await page.locator("#prompt-output").innerText();
      assert.ok(output.length > 0, "tokens reached the page");
      const updates = await page.evaluate("globalThis.__updates") as number;
      assert.ok(updates >= 2, `the answer arrived token by token (${updates} updates)`);
      assert.match(await page.locator("#receipt-status").innerText(), /verified.*signature/);
      // The job shows in the jobs panel and the validator's feed has its receipt.
      await page.locator('#jobs .job[data-state="length"], #jobs .job[data-state="stop"]')
        .first().waitFor();
      await page.locator('#activity li[data-kind="receipt"]').first().waitFor();

      await Deno.mkdir(OUTPUT_DIR, { recursive: true });
      await page.screenshot({
        path: new URL("dashboard.png", OUTPUT_DIR).pathname,
        fullPage: true,
      });
      assert.deepEqual(problems, [], "no console errors");
    } finally {
      await browser.close();
      await peer.shutdown();
      await worker.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
