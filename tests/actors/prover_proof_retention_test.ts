/**
 * The prover keeps what a challenge can ask for — the job and its proof data — durably and only
 * for as long as a challenge can come.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  DEFAULT_PROOF_RETENTION_MS,
  type ProveHandle,
  ProverActor,
  type ProverActorOptions,
  type ProverMessage,
  type ProverStats,
} from "../../actors/prover_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { scriptedChunks, scriptedJob } from "./_prover_fixtures.ts";
import { type ServedProof, verifyServedProof } from "../../proof/served_proof.ts";
import { ProofStore } from "../../proof/proof_store.ts";
import { encodeCbor } from "../../protocols/cbor.ts";

const identity = Identity.generate();

const job = (nonce: string): TextJob => scriptedJob(nonce, 8);

const chunks = scriptedChunks;

async function withProver(
  options: Omit<ProverActorOptions, "identity">,
  fn: (prover: ReturnType<ActorSystem["lookup"]> & object) => Promise<void>,
): Promise<void> {
  const system = new ActorSystem({ name: "prover-retention" });
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity, ...options }),
    });
    await fn(prover);
  } finally {
    await system.shutdown();
  }
}

async function prove(prover: { ask: <T>(m: ProverMessage) => Promise<T> }, nonce: string) {
  const j = job(nonce);
  const handle = await prover.ask<ProveHandle>({
    type: "prove",
    job: j,
    jobId: jobId(j),
    chunks: chunks(5),
  });
  return { job: j, id: receiptId(await handle.receipt) };
}

Deno.test("prover: a job and its proof data are kept durably across a restart while a challenge can come, then deleted", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: 1_700_000_000_000 };
  const retention = 5 * 60_000;
  const options = { dir, now: () => clock.t, proofRetentionMs: retention, sweepEveryMs: 0 };
  try {
    let proved: { job: TextJob; id: string } | undefined;
    await withProver(options, async (prover) => {
      proved = await prove(prover, "first");
    });
    const { id } = proved!;
    // A restart: the record is on disk, job included, and served.
    const kept = await new ProofStore(dir, { retentionMs: retention }).get(id);
    assert.deepEqual(kept?.job, proved!.job);
    await withProver(options, async (prover) => {
      const served = await prover.ask<ServedProof | undefined>({
        type: "get_proof",
        receiptId: id,
      });
      assert.ok(served && verifyServedProof(served, id, identity.publicKey));
      assert.deepEqual(served.proof, kept?.proof);
      // Just inside the retention: a challenge can still come, so it stays.
      clock.t += retention - 1;
      await prover.ask({ type: "sweep" });
      assert.ok(await prover.ask({ type: "get_proof", receiptId: id }));
      // Past it (and past its minute's directory): no challenge can ask, so it is gone.
      clock.t += 2 * 60_000;
      await prover.ask({ type: "sweep" });
      assert.equal(await prover.ask({ type: "get_proof", receiptId: id }), undefined);
      const stats = await prover.ask<ProverStats>({ type: "stats" });
      assert.deepEqual({ stored: stats.stored, swept: stats.swept }, { stored: 0, swept: 1 });
    });
    const left: string[] = [];
    for await (const entry of Deno.readDir(dir)) left.push(entry.name);
    assert.deepEqual(left, [], "nothing left behind: the directory does not grow with history");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prover: proof data of the old layout is still served, and deleted once past the retention", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: Date.now() };
  try {
    let id = "";
    await withProver({ dir: `${dir}/new`, sweepEveryMs: 0 }, async (prover) => {
      id = (await prove(prover, "legacy")).id;
    });
    // What the prover wrote before jobs were kept with proofs: <dir>/<receiptId>.cbor.
    const record = await new ProofStore(`${dir}/new`, { retentionMs: 1 }).get(id);
    await Deno.mkdir(`${dir}/old`);
    await Deno.writeFile(`${dir}/old/${id}.cbor`, encodeCbor(record!.proof));
    const options = { dir: `${dir}/old`, now: () => clock.t, sweepEveryMs: 0 };
    await withProver(options, async (prover) => {
      assert.ok(await prover.ask({ type: "get_proof", receiptId: id }));
      clock.t = Date.now() + DEFAULT_PROOF_RETENTION_MS + 1_000; // file times are the real clock's
      await prover.ask({ type: "sweep" });
      assert.equal(await prover.ask({ type: "get_proof", receiptId: id }), undefined);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prover: proof data is fsync'd before it is renamed into place, and its directory after", async () => {
  const dir = await Deno.makeTempDir();
  const events: string[] = [];
  const rename = Deno.rename;
  const { syncData, sync } = Deno.FsFile.prototype;
  (Deno as { rename: typeof Deno.rename }).rename = (from, to) => {
    events.push(`rename ${String(to).endsWith(".cbor") ? "proof" : "other"}`);
    return rename(from, to);
  };
  Deno.FsFile.prototype.syncData = function () {
    events.push("sync file");
    return syncData.call(this);
  };
  Deno.FsFile.prototype.sync = function () {
    events.push("sync file or directory");
    return sync.call(this);
  };
  try {
    await withProver({ dir, sweepEveryMs: 0 }, async (prover) => {
      events.length = 0;
      await prove(prover, "durable");
    });
    const renamed = events.indexOf("rename proof");
    assert.ok(renamed > 0, `the proof is renamed into place: ${events.join(", ")}`);
    assert.match(events[renamed - 1], /^sync file/, `synced before the rename: ${events}`);
    assert.match(events[renamed + 1] ?? "", /directory/, `directory synced after: ${events}`);
  } finally {
    (Deno as { rename: typeof Deno.rename }).rename = rename;
    Object.assign(Deno.FsFile.prototype, { syncData, sync });
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prover: a burst of jobs beyond the memory bound is served in full after a restart (nothing a challenge needs lives only in memory)", async () => {
  const dir = await Deno.makeTempDir();
  const options = { dir, maxProofs: 4, sweepEveryMs: 0 };
  try {
    const ids: string[] = [];
    await withProver(options, async (prover) => {
      const burst = Array.from({ length: 24 }, (_, i) => prove(prover, `burst-${i}`));
      for (const { id } of await Promise.all(burst)) ids.push(id);
    });
    await withProver(options, async (prover) => {
      for (const id of ids) {
        const served = await prover.ask<ServedProof | undefined>({
          type: "get_proof",
          receiptId: id,
        });
        assert.ok(served && verifyServedProof(served, id, identity.publicKey), `proof of ${id}`);
      }
      assert.equal((await prover.ask<ProverStats>({ type: "stats" })).stored, ids.length);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
