/**
 * The dashboard's training panel in a real browser: a coordinator and a trainer, in-process,
 * run one short round of the test architecture (L = 1, d = 32) over a TCP peer connection.
 * The coordinator's page must show the round with its held-out bits per byte and the trainer
 * it accepted; the trainer's page must show its local run's loss and the round it trained.
 * A node that takes no part in training keeps the panel hidden. A screenshot of the panel goes
 * to `tmp/test-output/`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, OUTPUT_DIR, requireChromium, startTestNode } from "./_helpers.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { TEST_ARCH } from "../training/_fixtures.ts";

/** Local steps of the round: enough points for a loss curve, a second or two of compute. */
const H = 6;
/** A small corpus, dealt to one trainer with a held-out part for the coordinator. */
const CORPUS_DOCS = 20;

Deno.test({
  name:
    "dashboard in chromium: the coordinator's page shows the round's held-out bits/byte and its trainer, the trainer's page its loss, a plain node hides the panel",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await requireChromium();
    const dir = await Deno.makeTempDir();
    const training = { arch: TEST_ARCH, corpusDocs: CORPUS_DOCS };
    const coordinator = await startTestNode(join(dir, "coordinator"), {
      network: { listen: { port: 0 }, idleTimeoutMs: 30_000 },
      training: {
        ...training,
        coordinator: { enabled: true, rounds: 1, steps: H, minTrainers: 1, deadlineMs: 60_000 },
        challengeProbability: 1,
      },
    });
    const network = coordinator.system.lookup<NetworkMessage>("node/network")!;
    const address = await network.ask<Deno.NetAddr>({ type: "listening" });
    const trainer = await startTestNode(join(dir, "trainer"), {
      roles: { inference: false, prover: false },
      network: { listening: false, peers: [`127.0.0.1:${address.port}`], idleTimeoutMs: 30_000 },
      training: { ...training, trainer: { enabled: true, shard: 0, shards: 1 } },
    });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const problems: string[] = [];
      const open = async (url: string | undefined) => {
        const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
        page.on("console", (m) => {
          if (m.type() === "error") problems.push(`console: ${m.text()}`);
        });
        page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
        await page.goto(`${url}/`);
        return page;
      };
      const coordinatorPage = await open(coordinator.url);
      // The round, once done: its number, a held-out figure, one trainer accepted, none left out.
      const row = coordinatorPage.locator("#training-rounds tbody tr").first();
      await row.waitFor({ timeout: 120_000 });
      const cells = await row.locator("td").allInnerTexts();
      assert.equal(cells[0], "0", "round 0");
      const bits = Number(cells[2]);
      assert.ok(bits > 0 && bits < 8.5, `held-out bits/byte is a figure (${cells[2]})`);
      assert.equal(cells[3], "1", "one trainer's delta went in");
      assert.equal(cells[4], "–", "nobody left out");
      assert.match(await coordinatorPage.locator("#training-summary").innerText(), /coordinating/);
      assert.equal(await coordinatorPage.locator("#training-panel").isVisible(), true);
      // The coordinator's chart has the start model's figure and the round's: two points.
      assert.match(
        await coordinatorPage.locator("#training-rounds-chart .chart-label").innerText(),
        /held-out \d/,
      );

      await Deno.mkdir(OUTPUT_DIR, { recursive: true });
      await coordinatorPage.locator("#training-panel").screenshot({
        path: new URL("training_panel.png", OUTPUT_DIR).pathname,
      });

      const trainerPage = await open(trainer.url);
      await trainerPage.locator("#training-summary", { hasText: /1 round trained/ }).waitFor();
      // H losses drawn: one path with H points (M + (H − 1) L commands).
      const path = await trainerPage.locator("#training-steps-chart path").getAttribute("d");
      assert.equal(path?.split("L").length, H, `the local run's ${H} steps are drawn`);

      // A node that neither trains nor coordinates: no training panel.
      const plain = await startTestNode(join(dir, "plain"), {
        roles: { inference: false, prover: false, storage: false },
      });
      try {
        const plainPage = await open(plain.url);
        await plainPage.locator("#tree li").first().waitFor();
        // Give a snapshot time to arrive: the panel stays hidden after one.
        await plainPage.waitForFunction(
          `document.getElementById("ledger-summary").textContent !== ""`,
        );
        assert.equal(await plainPage.locator("#training-panel").isVisible(), false);
      } finally {
        await plain.shutdown();
      }
      assert.deepEqual(problems, [], "no console errors");
    } finally {
      await browser.close();
      await trainer.shutdown();
      await coordinator.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
