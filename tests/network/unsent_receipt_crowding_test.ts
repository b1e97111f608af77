/**
 * A worker keeps the receipts of its jobs for `inference.get_receipt` (`UnsentReceipts`,
 * `inference/serve_inference.ts`): those whose `end` event never reached the requester (owed: the
 * requester asks for them to pay the worker) and, since stop 78, those it delivered (for a router
 * that forgot the job). Both share the 32-per-requester bound, and a router is one requester key
 * for all its clients' jobs. Its delivered receipts must not push out one still owed: before, 32
 * jobs delivered after a lost end left the worker with nothing to answer, and it was paid nowhere.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  MAX_UNSENT_RECEIPTS,
  MAX_UNSENT_RECEIPTS_PER_PEER,
  UnsentReceipts,
} from "../../inference/serve_inference.ts";
import type { Receipt } from "../../protocols/receipt.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  type InferenceEvent,
  ReceiptRequestMessage,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import { jobId } from "../../protocols/job.ts";
import { eventually } from "../_helpers/wait.ts";
import { clientJob, connectWorker, ProvingWorkerPort } from "./_proving_worker.ts";

/** Read `job`'s events on `connection` up to the token that ends it; the reader, still open. */
async function readToLastToken(connection: Connection, nonce: string) {
  const job = clientJob(nonce);
  const reader = connection.openStream(SubmitMessage, { job }).getReader();
  while (true) {
    const { value } = await reader.read() as { value?: InferenceEvent };
    if (value === undefined) throw new Error("the job ended before its last token");
    if (value.kind === "token" && value.finishReason !== undefined) break;
  }
  return { reader, id: jobId(job) };
}

/** The worker's answer to `get_receipt` for job `id` on `connection`: the receipt's job id. */
async function askedFor(connection: Connection, id: string): Promise<string | undefined> {
  return (await connection.request(ReceiptRequestMessage, { jobId: id })).receipt?.jobId;
}

Deno.test("a requester's delivered receipts do not push out one the worker still owes it: after a lost end and 32 delivered jobs, the owed receipt is still answered", async () => {
  const system = new ActorSystem({ name: "unsent-crowding-worker" });
  const [router, worker] = [Identity.generate(), Identity.generate()];
  const open: Connection[] = [];
  try {
    // Job A: every token read, then the connection lost before the worker's end event.
    const held = new ProvingWorkerPort(worker, { held: true });
    const first = await connectWorker(router, worker, held, system);
    const owed = await readToLastToken(first.toWorker, "unsent-crowding-owed");
    await first.toWorker.close();
    await first.atWorker.close();
    held.release.resolve(); // the receipt is signed now, its end unsent

    // The same router back on a new connection; the worker kept A's receipt for it.
    const second = await connectWorker(router, worker, new ProvingWorkerPort(worker), system);
    open.push(second.toWorker, second.atWorker);
    await eventually(
      async () => await askedFor(second.toWorker, owed.id) === owed.id,
      "the worker to keep the owed receipt",
    );

    // As many jobs as the per-requester bound, each delivered whole with its receipt.
    let last = "";
    for (let i = 0; i < MAX_UNSENT_RECEIPTS_PER_PEER; i++) {
      const { reader, id } = await readToLastToken(second.toWorker, `unsent-crowding-${i}`);
      const { value } = await reader.read() as { value?: InferenceEvent };
      assert.ok(value?.kind === "end" && value.summary.receipt !== undefined, "no receipt in end");
      reader.releaseLock();
      last = id;
    }

    // The receipt the worker is owed pay for is still there to ask for; the newest delivered too.
    assert.equal(await askedFor(second.toWorker, owed.id), owed.id, "the owed receipt was lost");
    assert.equal(await askedFor(second.toWorker, last), last);
  } finally {
    for (const c of open) await c.close();
    await system.shutdown();
  }
});

Deno.test("the worker's kept receipts: delivered ones go first, and never push out one still owed, for its requester or when the store is full", () => {
  const kept = new UnsentReceipts(() => 0);
  let n = 0;
  const next = () => ({ jobId: (++n).toString(16).padStart(64, "0") }) as Receipt;
  const has = (peer: string, receipt: Receipt) => kept.get(peer, receipt.jobId) !== undefined;

  // One key: owed receipts fill its share; a delivered one then yields, and is not kept.
  const owed = Array.from({ length: MAX_UNSENT_RECEIPTS_PER_PEER }, next);
  for (const receipt of owed) kept.keep("aa", receipt);
  const late = next();
  kept.keep("aa", late, true);
  assert.ok(!has("aa", late), "a delivered receipt pushed out an owed one");
  assert.ok(owed.every((receipt) => has("aa", receipt)));
  // Kept as owed, a later delivered keep of the same receipt leaves it owed.
  kept.keep("aa", owed[0], true);
  kept.keep("aa", next(), true);
  assert.ok(has("aa", owed[0]));

  // The store full of other keys' delivered receipts: an owed one takes a delivered one's place.
  const full = new UnsentReceipts(() => 0);
  const keys = MAX_UNSENT_RECEIPTS / MAX_UNSENT_RECEIPTS_PER_PEER;
  for (let k = 0; k < keys; k++) {
    for (let i = 0; i < MAX_UNSENT_RECEIPTS_PER_PEER; i++) full.keep(`k${k}`, next(), true);
  }
  assert.equal(full.size, MAX_UNSENT_RECEIPTS);
  const owedHere = next();
  full.keep("zz", owedHere);
  assert.equal(full.get("zz", owedHere.jobId)?.jobId, owedHere.jobId);
  assert.equal(full.size, MAX_UNSENT_RECEIPTS);
});
