/**
 * Review s48 of the node's one-receipt-per-job guard (`node/_node_children.ts` wires the InferenceActor's
 * `receiptSigned` to the ValidatorActor's `job_recorded`): a worker refuses a job it already
 * signed a receipt for (a second run could sign a different receipt: equivocation, slashed). The
 * ledger was asked whether ANY receipt for the job is recorded, so a staked key that knew the
 * job before its worker ran it (its requester, a router, a failover's first worker) and got a
 * receipt of its own for it into the worker's ledger made the honest worker refuse the job as
 * already finished. Only this node's own receipt answers yes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseNodeConfig } from "../../node/config.ts";
import { NODE_ACTORS, startNode } from "../../node/node.ts";
import type { ReceiptHandled, ValidatorMessage } from "../../actors/validator_actor.ts";
import type { InferenceMessage, SubmitReply } from "../../actors/inference_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { proveOn, textJob } from "../actors/_validator_fixture.ts";

Deno.test("review s48: a receipt another key signed for a job does not make this node refuse the job as already finished; its own does", async () => {
  const dir = await Deno.makeTempDir();
  const node = await startNode(
    parseNodeConfig({
      dataDir: join(dir, "data"),
      http: { port: 0, hostname: "127.0.0.1" },
      network: { listen: { port: 0, hostname: "127.0.0.1" } },
      roles: { storage: false, inference: true, prover: true, validator: true },
      dashboard: { enabled: false },
      heartbeatMs: 0,
    }),
  );
  try {
    const validator = node.system.lookup<ValidatorMessage>(NODE_ACTORS.validator)!;
    const inference = node.system.lookup<InferenceMessage>(NODE_ACTORS.inference)!;
    const requester = Identity.generate();
    /** `signer`'s receipt for a fresh job, recorded in this node's ledger; the job. */
    const recordedFor = async (signer: Identity, nonce: string) => {
      await validator.ask({ type: "deposit", key: signer.publicKey, amount: 1_000_000 });
      const job = textJob(requester, nonce);
      const { receipt } = await proveOn(job, signer);
      const handled = await validator.ask<ReceiptHandled>({
        type: "receipt",
        receipt,
        job,
        origin: "ab".repeat(32),
      });
      assert.equal(handled.recorded, true);
      return job;
    };
    const refusal = async (job: ReturnType<typeof textJob>) => {
      const reply = await inference.ask<SubmitReply>({ type: "submit", job });
      if (reply.accepted) reply.handle.cancel();
      return reply.accepted ? undefined : reply.error.code;
    };
    // Control: its own receipt for a job (signed before a restart) still refuses the job.
    const own = await recordedFor(node.identity, "signed-here");
    assert.equal(await refusal(own), "duplicate_job");
    // Another key's receipt for the job, announced before this node ran it.
    const frontRun = await recordedFor(Identity.generate(), "front-run");
    assert.notEqual(
      await refusal(frontRun),
      "duplicate_job",
      "another key's receipt is not this node's: the job is not finished here",
    );
  } finally {
    await node.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
