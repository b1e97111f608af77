/**
 * Review s61 (ops2, S3 and S4). The heartbeat's `receipts N` counted copies, not receipts: after
 * one job a router said `receipts 2 (2 from peers)` and its worker `receipts 2 (1 from peers)`
 * (the worker announces its receipt and the router hands it in too), which reads as two jobs.
 * The validator now counts the copies apart (`ValidatorStats.copies`, `copiesFromPeers`; metric
 * `veriflow_validator_receipt_copies_total`), and the heartbeat shows receipts new here and the
 * copies beside them. And the validator's verdict line (`validator: challenged job … → valid`) did
 * not name the worker it judged: it now says `, worker <key16>` after the outcome.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  type ReceiptHandled,
  ValidatorActor,
  type ValidatorMessage,
  type ValidatorStats,
} from "../../actors/validator_actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { startHeartbeat } from "../../node/heartbeat.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { proveJob } from "../../proof/prover.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { loadFixture, manualStream } from "../proof/_models.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { eventually } from "../_helpers/wait.ts";

Deno.test("review s61 ops2: copies of a receipt are counted apart, the heartbeat shows one receipt per job, and the verdict line names the worker", async () => {
  const f = await loadFixture();
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "review-s61-ops2-copies" });
  const lines: string[] = [];
  const proofs = new Map<string, ServedProof>();
  await system.spawn<NetworkMessage>({
    name: "test/network",
    factory: () => new RecordingNetwork([]),
  });
  const me = Identity.generate();
  const validator = await system.spawn<ValidatorMessage>({
    name: "node/validator",
    factory: () =>
      new ValidatorActor({
        identity: me,
        ledgerDir: `${dir}/ledger`,
        ledger: { now: () => 1_000_000 },
        challengeProbability: 1,
        finalizeIntervalMs: 0,
        network: "test/network",
        models: {
          get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
        },
        source: { proof: (r) => Promise.resolve(proofs.get(receiptId(r))) },
        log: (line) => lines.push(line),
      }),
  });
  let heartbeat: { stop(): void } | undefined;
  try {
    const worker = Identity.generate();
    assert.equal(
      await validator.ask({ type: "pledge", pledge: signStakePledge(worker, 10_000, 1) }),
      true,
    );
    const job: TextJob = {
      kind: "text",
      model: f.honest.info.cid,
      prompt: "The validator",
      params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
      nonce: "copies",
    };
    const ids = f.honest.tokenizer.encode(job.prompt);
    const proved = await proveJob(job, manualStream(() => f.honest, ids, job.params), worker);
    const receipt = proved.receipt;
    proofs.set(receiptId(receipt), signServedProof(receiptId(receipt), proved.proof, worker));
    // The router hands the receipt in, and the worker's announcement brings it again, twice.
    const peer = toHex(worker.publicKey);
    const first = await validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt,
      job,
      origin: peer,
    });
    await first.result;
    for (let i = 0; i < 2; i++) {
      await validator.ask({ type: "receipt", receipt, job, origin: "cd".repeat(32) });
    }
    const stats = await validator.ask<ValidatorStats>({ type: "stats" });
    // Unchanged meaning: every receipt handed in (`veriflow_validator_receipts_total`).
    assert.equal(stats.received, 3);
    assert.equal(stats.fromPeers, 3);
    assert.equal(stats.copies, 2, "two copies of a receipt already in the ledger");
    assert.equal(stats.copiesFromPeers, 2);
    // On /metrics: the old series keep their meaning; the copies are a series of their own.
    const metrics = new MetricsRegistry();
    const collectors = nodeCollectors({
      publicKey: me.publicKey,
      prover: () => undefined,
      validator: () => validator,
      network: () => undefined,
    });
    for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
    const text = await metrics.render();
    assert.match(text, /^veriflow_validator_receipts_total 3$/m);
    assert.match(text, /^veriflow_validator_receipts_from_peers_total 3$/m);
    assert.match(text, /^veriflow_validator_receipt_copies_total 2$/m);

    const verdict = await eventually(
      () => lines.find((l) => l.startsWith("validator: challenged job")),
      "the verdict line",
    );
    assert.match(
      verdict,
      new RegExp(
        `^validator: challenged job ${receipt.jobId.slice(0, 12)} → valid, worker ${
          peer.slice(0, 16)
        } \\(`,
      ),
    );

    const beats: string[] = [];
    heartbeat = startHeartbeat({
      everyMs: 1,
      publicKey: me.publicKey,
      validator: () => validator,
      network: () => undefined,
      log: (line) => beats.push(line),
    });
    const beat = await eventually(
      () => beats.find((l) => l.includes("receipts ")),
      "a heartbeat with the validator's part",
    );
    assert.match(beat, /receipts 1 \(1 from peers, 2 copies\) challenged 1 /);
  } finally {
    heartbeat?.stop();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
