/**
 * The receipt of a job whose worker finished it and evicted its unread tokens (`slow_reader`,
 * `#evictedReceipt`) is held to the same prompt-count bounds as a finished job's: the count its
 * worker's own `start` gave, inside the window it stated (review s79 vmoney F4: this path checked
 * the count against no window and no start). Who pays: nobody for such a receipt; the honest one
 * is assigned, the slow client's to pay. The router's clock is fake: no real time is waited on.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import { MIN_SLOW_READER_UNREAD_MS } from "../../inference/_remote_job.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { ReceiptRequestMessage, SubmitMessage } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { signReceipt } from "../../protocols/receipt.ts";
import { Identity } from "../../protocols/identity.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { jobFor, linked, TEXT, TOKENS } from "./_hostile_worker_fixture.ts";
import { INFO } from "./_router_fixture.ts";
import { Recorder, Workers } from "./_router_doubles.ts";
import {
  events,
  receiptFor,
  signed as signed_,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";

/** The model's window the worker states. */
const WINDOW = 256;
/** Tokens the worker sent before it evicted the rest. */
const KEPT = 2;

/** Answers `connection_to` with the open connection to the key asked. */
class WorkersByKey extends Workers {
  override receive(message: NetworkMessage): unknown {
    if (message.type !== "connection_to") return super.receive(message);
    return this.connections.find((c) => !c.isClosed && bytesEqual(c.peerKey!, message.key));
  }
}

/**
 * A worker that tells `told` prompt tokens in its start, sends {@link KEPT} tokens, ends the job
 * `slow_reader` and answers the receipt request with its receipt over the whole job signing
 * `signed`; the router's client leaves the events unread long enough for that to be believed.
 * The prompt counts of the receipts the router's validator got.
 */
async function evicted(told: number, signed: number, nonce: string): Promise<unknown[]> {
  const job = jobFor(nonce);
  /** The job as the router sent it (naming the router as its requester). */
  let sent: TextJob | undefined;
  const w = await linked((atWorker, _submissions, identity) => {
    atWorker.handle(SubmitMessage, (body) => {
      sent = body.job as TextJob;
      const model = { ...INFO, contextLength: WINDOW };
      const list = [start(body.job, { model, promptTokens: told }), wireToken(0), wireToken(1)];
      const fail = Promise.resolve(new VeriflowError("slow_reader", "read too slowly"));
      return Promise.resolve(signed_(events(list, fail), identity, body));
    });
    atWorker.handle(ReceiptRequestMessage, () => {
      const { sig: _s, worker: _w, ...unsigned } = receiptFor(sent!, identity, TEXT, TOKENS);
      return { receipt: signReceipt({ ...unsigned, promptTokens: signed }, identity) };
    });
  });
  const system = new ActorSystem({ name: "evicted-prompt-count" });
  const timers = new ManualTimers();
  try {
    const workers = new WorkersByKey([w.toWorker]);
    const network = await system.spawn<NetworkMessage>({
      name: "r/network",
      factory: () => workers,
    });
    const recorder = new Recorder();
    const validator = await system.spawn<ValidatorMessage>({
      name: "r/validator",
      factory: () => recorder,
    });
    const port = new NetworkInferencePort(network, validator, Identity.generate(), {
      tokensPerEvent: 1,
      timers,
      queueHoldMs: Infinity,
    });
    const handle = await port.submit(job);
    // The client stops reading: the job's events wait unread.
    await timers.advance(MIN_SLOW_READER_UNREAD_MS);
    const reader = handle.tokens.getReader();
    for (let i = 0; i < KEPT; i++) assert.equal((await reader.read()).value?.index, i);
    const failed = await reader.read().then(() => undefined, (e) => e?.code);
    assert.equal(failed, "slow_reader");
    await handle.done;
    await validator.ask({ type: "stats" });
    return recorder.told.filter((m) => m.type === "receipt")
      .map((m) => (m as { receipt: { promptTokens?: number } }).receipt.promptTokens);
  } finally {
    await w.close();
    await system.shutdown();
  }
}

Deno.test("an evicted job's receipt signing a count past the window its worker stated (300 against 256) is not assigned", async () => {
  assert.deepEqual(await evicted(300, 300, "evicted-past-window"), []);
});

Deno.test("an evicted job's receipt signing another count (5) than its worker's start gave (3) is not assigned; one signing 3 is", async () => {
  assert.deepEqual(await evicted(3, 5, "evicted-other"), []);
  assert.deepEqual(await evicted(3, 3, "evicted-honest"), [3]);
});
