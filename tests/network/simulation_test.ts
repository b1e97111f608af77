/**
 * The N-node simulation's figures (`network/simulation/`): each must be what the simulated nodes did.
 *
 * - The verdicts' hops are measured from each verdict's own signer, not from the first
 *   challenger drawn: with several challengers, the floor a per-hop latency multiplies is the
 *   farthest any verdict must travel.
 * - The ideal repair is the copies the survivors' placement lacks, not the copies that left:
 *   with fewer survivors than r there is nowhere to put a lost copy, and the ideal must not
 *   claim a repair that cannot happen (it made the measured repair "beat" it).
 * - The targeted repair is what the storage nodes' own `HolderRepair` sends, deferral proofs
 *   and all, not a simplified plan of it.
 */
import assert from "node:assert/strict";
import { runSimulation } from "../../network/simulation/simulation.ts";
import { hopDistances, randomTopology } from "../../network/simulation/topology.ts";

Deno.test("several challengers: the verdicts' hops are the farthest any signer's verdict must go", async () => {
  const nodes = 20;
  const degree = 3;
  const seed = 7;
  const topology = randomTopology({ nodes, degree, seed });
  const eccentricity = Array.from(
    { length: nodes },
    (_, i) => Math.max(...hopDistances(topology, i)),
  );
  const diameter = Math.max(...eccentricity);
  // Every node but the requester and the worker challenges: with three or more nodes at the
  // diameter's end, some signer is one of them, so the verdicts need `diameter` hops.
  assert.ok(eccentricity.filter((e) => e === diameter).length >= 3, "precondition");
  const report = await runSimulation({
    nodes,
    degree,
    seed,
    challengers: nodes - 2,
    storageFraction: 0,
  });
  // (How far each verdict got is the validators' business: a challenger that has settled its
  // own challenge takes no later verdict on the receipt. Its hops are the graph's.)
  assert.equal(report.verdict.hops, diameter);
});

Deno.test("fewer storage survivors than r: the ideal repair is what the survivors can hold, and no repair beats it", async () => {
  // 10 nodes × 0.2: two storage nodes, r = 3, one leaves. The one left holds every chunk
  // already: there is nowhere to put another copy, so the least a repair must send is nothing.
  const report = await runSimulation({
    nodes: 10,
    degree: 3,
    seed: 2,
    storageFraction: 0.2,
    replicas: 3,
    chunks: 20,
  });
  const storage = report.storage!;
  assert.equal(storage.storageNodes, 2);
  assert.equal(storage.departed, 1);
  assert.equal(storage.targeted.repaired, 0, "no copy could be placed");
  assert.equal(storage.idealBytes, 0);
  assert.ok(storage.targeted.bytes >= storage.idealBytes, "no repair beats the ideal");
});

Deno.test("the targeted repair is the nodes' own HolderRepair: a chunk whose next-ranked peer left is checked too", async () => {
  // 8 nodes × 0.5: four storage nodes, r = 3, one leaves. Every chunk either lost a holder or
  // lost its fourth-ranked peer — which holds a copy whenever a holder missed the write, so a
  // node's HolderRepair checks those chunks as well (`planRepair` with deferral).
  const report = await runSimulation({
    nodes: 8,
    degree: 3,
    seed: 4,
    storageFraction: 0.5,
    replicas: 3,
    chunks: 40,
    leaveFraction: 0.25,
  });
  const storage = report.storage!;
  assert.equal(storage.storageNodes, 4);
  assert.equal(storage.departed, 1);
  assert.ok(storage.affectedChunks < storage.chunks, "some chunks lost only their fourth peer");
  assert.ok(
    storage.targeted.checked >= storage.chunks,
    `the survivors checked ${storage.targeted.checked} chunks of ${storage.chunks}`,
  );
  assert.equal(storage.underReplicated, 0);
  assert.equal(storage.full.repaired, 0, "the targeted pass left nothing to repair");
  assert.ok(storage.targeted.bytes >= storage.idealBytes, "no repair beats the ideal");
});
