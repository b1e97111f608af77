/**
 * The N-node simulation at a size a test can afford: what it reports must hold of the network it
 * ran, not just look plausible — every ledger got the receipt and the verdict, the frames are the
 * flood's own count for the drawn graph, repair left no chunk short of r copies, and stake
 * pledged only to direct peers reaches every ledger by gossip.
 */
import assert from "node:assert/strict";
import { DEFAULT_TOKENS_PER_EVENT } from "../../inference/remote_port.ts";
import { expectedFrames, runSimulation } from "../../network/simulation/simulation.ts";
import { formatReport } from "../../network/simulation/report.ts";
import { hopDistances, randomTopology } from "../../network/simulation/topology.ts";
import { main } from "../../tools/simulate.ts";

/** Frames of the job itself besides the floods (submit, started, tokens, end, stream credit). */
const JOB_FRAMES_MOST = 64;

Deno.test("40 nodes: the receipt and the verdict reach every ledger, with exactly the flood's frames", async () => {
  const report = await runSimulation({
    nodes: 40,
    degree: 6,
    seed: 7,
    chunks: 60,
    storageFraction: 0.5,
  });
  const { edges } = report.topology;
  assert.equal(edges, (40 * 6) / 2);
  assert.equal(report.receipt.reached, 40, "every ledger recorded the receipt");
  assert.equal(report.verdict.reached, 40, "every ledger recorded the verdict");

  // Each node passes each new item to every peer but its sender: 2·links − nodes sends.
  const expected = expectedFrames(40, edges);
  assert.deepEqual(report.job.expected, expected);
  // Each verdict copy after its author's pledge (`sendAhead`), but on a link to the author.
  const verdictFrames = report.job.verdictPhase.frames;
  assert.ok(
    verdictFrames > expected.verdictFlood &&
      verdictFrames <= expected.verdictFlood + expected.pledgesAhead,
    `${verdictFrames} verdict-phase frames`,
  );
  assert.equal(report.job.verdictCopies, expected.verdictFlood, "each copy was received");
  // The requester's own copy comes from its inference port, not a peer link.
  assert.equal(report.job.receiptCopies, expected.receiptFlood / 2 + 1);
  const jobFrames = report.job.receiptPhase.frames - expected.receiptFlood;
  // Its tokens: one frame each, or fewer when several were ready together (a `tokens` event
  // carries up to DEFAULT_TOKENS_PER_EVENT).
  const fewestTokenFrames = Math.ceil(report.options.tokens / DEFAULT_TOKENS_PER_EVENT);
  assert.ok(
    jobFrames >= fewestTokenFrames && jobFrames <= JOB_FRAMES_MOST,
    `the job itself took ${jobFrames} frames (its ${report.options.tokens} tokens and a few more)`,
  );
  assert.equal(report.job.total.frames, report.job.receiptPhase.frames + verdictFrames);
  assert.deepEqual(report.job.refused, { receipts: 0, verdicts: 0 });

  // The hops are the graph's: the same seed draws the same graph.
  const topology = randomTopology({ nodes: 40, degree: 6, seed: 7 });
  assert.ok(report.receipt.hops >= 1 && report.receipt.hops < 40);
  assert.ok(hopDistances(topology, 0).every(Number.isFinite), "the graph is connected");
  assert.ok(report.verdict.allMs >= report.verdict.medianMs);

  const storage = report.storage!;
  assert.equal(storage.storageNodes, 20);
  assert.equal(storage.departed, 2);
  assert.ok(storage.lostCopies > 0, "the departed nodes held copies");
  const restorable = storage.lostCopies - storage.replicas * storage.targeted.lost;
  assert.equal(storage.idealBytes, restorable * storage.chunkBytes);
  assert.equal(storage.underReplicated, storage.targeted.lost, "r copies of every kept chunk");
  assert.equal(storage.full.repaired, 0, "the targeted pass left nothing to repair");
  assert.ok(storage.targeted.bytes >= storage.idealBytes, "no repair beats the ideal");

  // Measured (after − before, over the nodes); at 40 nodes a collection in between can make it
  // come out at or below zero, so only its being a number is this test's business.
  assert.ok(
    Number.isFinite(report.memory.rssPerNode) && Number.isFinite(report.memory.heapPerNode),
  );
  const text = formatReport(report);
  assert.match(text, /Messages per job +\d[\d,]* frames/);
  assert.match(text, /Verdict reaches every ledger +40\/40 in/);
  assert.match(text, /Memory per node +-?\d+ kB resident/);
});

Deno.test("stake pledged to direct peers on connect spreads by gossip: the receipt and the verdict reach every other ledger", async () => {
  const report = await runSimulation({
    nodes: 30,
    degree: 4,
    seed: 3,
    stake: "direct",
    storageFraction: 0,
  });
  // Pledges are passed on like receipts, so far ledgers know the worker's and the challenger's
  // stake. The one ledger left out is the worker's own: in the simulation nobody records a
  // node's stake in its own ledger (a real node deposits it at first start), so it refuses its
  // own receipt — every copy its neighbours pass to it.
  assert.equal(report.receipt.reached, 29, `reached ${report.receipt.reached} of 30`);
  assert.equal(report.verdict.reached, 29, `verdict in ${report.verdict.reached} of 30`);
  assert.equal(report.storage, undefined);
});

Deno.test("tools/simulate.ts refuses bad options with a usage line (exit 2)", async () => {
  const errors: string[] = [];
  const original = console.error;
  console.error = (line: string) => errors.push(line);
  try {
    assert.equal(await main(["--nodes", "2"]), 2);
    assert.equal(await main(["--stake", "everywhere"]), 2);
  } finally {
    console.error = original;
  }
  assert.match(errors.join("\n"), /nodes must be an integer/);
  assert.match(errors.join("\n"), /usage: /);
});

Deno.test("the simulated topology: connected, the mean degree asked for, no loops or double links", () => {
  for (const [nodes, degree] of [[10, 2], [100, 8], [31, 5]]) {
    const t = randomTopology({ nodes, degree, seed: nodes });
    assert.equal(t.edges.length, Math.round((nodes * degree) / 2));
    const keys = new Set(t.edges.map(([a, b]) => `${a}-${b}`));
    assert.equal(keys.size, t.edges.length, "no double links");
    assert.ok(t.edges.every(([a, b]) => a < b), "no loops");
    assert.equal(t.neighbours.reduce((sum, peers) => sum + peers.length, 0), 2 * t.edges.length);
    assert.ok(hopDistances(t, nodes - 1).every(Number.isFinite), "connected");
  }
  // The same seed draws the same graph.
  assert.deepEqual(
    randomTopology({ nodes: 50, degree: 6, seed: 9 }),
    randomTopology({ nodes: 50, degree: 6, seed: 9 }),
  );
});
