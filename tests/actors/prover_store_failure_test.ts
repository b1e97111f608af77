/**
 * A proof store the disk refuses (full, read-only, no permission) is the machine's condition:
 * each job ends without a receipt and says why, the prover keeps running (its supervisor never
 * escalates, so client traffic cannot stop the node), the fault shows in its stats and the
 * node's conditions, and it is logged once when it starts and once when writes work again.
 *
 * The refusal is real, not chattr: the store's directory is replaced by a plain file, so every
 * `mkdir` under it fails with the OS's NotADirectory, whoever runs the test.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorEvent } from "../../actors/events.ts";
import {
  proofStoreConditions,
  type ProveHandle,
  ProverActor,
  type ProverMessage,
  type ProverStats,
} from "../../actors/prover_actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ProofStoreError } from "../../proof/proof_store.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { scriptedChunks, scriptedJob } from "./_prover_fixtures.ts";

const identity = Identity.generate();

const job = (nonce: string): TextJob => scriptedJob(nonce, 4);

const chunks = scriptedChunks;

async function prove(prover: ActorRef<ProverMessage>, nonce: string) {
  const j = job(nonce);
  const handle = await prover.ask<ProveHandle>({
    type: "prove",
    job: j,
    jobId: jobId(j),
    chunks: chunks(4),
  });
  return handle.receipt;
}

Deno.test("prover: when proof data cannot be written, each job ends with proof_store_failed (path and OS reason), the actor never crashes, the fault is logged once, and a later write clears it", async () => {
  const root = await Deno.makeTempDir({ prefix: "veriflow-fix64-" });
  const dir = `${root}/proofs`;
  // No restarts at all: a single crash of the prover would be fatal to this system.
  const system = new ActorSystem({ name: "prover-store-failure", maxRestarts: 0 });
  const events: ActorEvent[] = [];
  system.events.subscribe((event) => events.push(event));
  const lines: string[] = [];
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity, dir, sweepEveryMs: 0, log: (l) => lines.push(l) }),
    });
    await Deno.writeTextFile(dir, "not a directory"); // every write under it is refused

    // More jobs than a supervisor's restart budget (5 in 30 s on a node).
    for (let i = 0; i < 7; i++) {
      const error = await prove(prover, `refused-${i}`).then(
        () => assert.fail("a receipt whose proof data was not kept must not be released"),
        (e) => e,
      );
      assert.ok(error instanceof ProofStoreError, String(error));
      assert.equal(error.code, "proof_store_failed");
      assert.match(error.message, /^proof data cannot be written to /);
      assert.ok(error.message.includes(dir), error.message);
      assert.match(error.message, /NotADirectory|Not a directory/);
      assert.match(error.message, /check free space and permissions$/);
    }
    assert.deepEqual(events.filter((e) => e.type !== "started").map((e) => e.type), []);
    const stats = await prover.ask<ProverStats>({ type: "stats" });
    assert.equal(stats.proven, 0);
    assert.equal(stats.unstored, 7);
    assert.equal(stats.active, 0);
    assert.deepEqual(stats.storeFaults.map((f) => [f.operation, f.code]), [
      ["write", "proof_store_failed"],
    ]);
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0], /^error: prover: proof data cannot be written to /);
    const conditions = await proofStoreConditions(prover);
    assert.deepEqual(conditions.map((c) => [c.component, c.status, c.code]), [
      ["proof_store", "degraded", "proof_store_failed"],
    ]);
    assert.ok(conditions[0].message.includes(dir));

    // The operator frees the disk: the next job gets its receipt and the fault clears.
    await Deno.remove(dir);
    await prove(prover, "written");
    const after = await prover.ask<ProverStats>({ type: "stats" });
    assert.equal(after.proven, 1);
    assert.equal(after.stored, 1);
    assert.deepEqual(after.storeFaults, []);
    assert.deepEqual(await proofStoreConditions(prover), []);
    assert.equal(lines.length, 2, lines.join("\n"));
    assert.match(lines[1], /^prover: proof data is written to .* again/);
    assert.deepEqual(events.filter((e) => e.type !== "started").map((e) => e.type), []);
  } finally {
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("prover: a sweep the disk refuses is a fault of the store, not a crash of the prover", async () => {
  const root = await Deno.makeTempDir({ prefix: "veriflow-fix64-" });
  const dir = `${root}/proofs`;
  const system = new ActorSystem({ name: "prover-sweep-failure", maxRestarts: 0 });
  const events: ActorEvent[] = [];
  system.events.subscribe((event) => events.push(event));
  const lines: string[] = [];
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity, dir, sweepEveryMs: 0, log: (l) => lines.push(l) }),
    });
    await Deno.writeTextFile(dir, "not a directory"); // listing it fails
    await prover.ask({ type: "sweep" });
    await prover.ask({ type: "sweep" });
    const stats = await prover.ask<ProverStats>({ type: "stats" });
    assert.deepEqual(stats.storeFaults.map((f) => f.operation), ["delete"]);
    assert.match(stats.storeFaults[0].message, /^proof data cannot be deleted from /);
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.deepEqual(events.filter((e) => e.type !== "started").map((e) => e.type), []);
    await Deno.remove(dir);
    await prover.ask({ type: "sweep" });
    assert.deepEqual((await prover.ask<ProverStats>({ type: "stats" })).storeFaults, []);
    assert.equal(lines.length, 2, lines.join("\n"));
  } finally {
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});
