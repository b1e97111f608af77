/**
 * The late receipt of a lost end (every token delivered, the worker's `end` event lost with its
 * connection: `network/_lost_ends.ts`) is held to the window its worker stated in its `start`, as
 * the receipt that comes with the end event is (review s79 vlate F5: the lost end kept only the
 * start's count, so the late receipt was held to the prompt's bytes, and an honest worker whose
 * tokenizer's NFKC normalizer counts the 3-byte "ﷺ" as 33 tokens had its receipt withheld and was
 * kept off the model). The window is kept on disk with the lost end, so a restarted router checks
 * the receipt the same way; a lost end written before the window was kept still reads. The
 * router's clock is fake: no real time is waited on.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ReceiptFiles } from "../../actors/_receipt_files.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import {
  LOST_END_FIRST_ASK_MS,
  LOST_ENDS_DIR,
  NetworkInferencePort,
} from "../../network/network_inference_port.ts";
import { LostEndFiles } from "../../network/_lost_end_files.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { toHex } from "../../protocols/hash.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  INFERENCE_PROTOCOL,
  type InferenceEvent,
  ReceiptRequestMessage,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { signReceipt } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { jobFor, TEXT, TOKENS } from "./_hostile_worker_fixture.ts";
import { INFO } from "./_router_fixture.ts";
import { Recorder, Workers } from "./_router_doubles.ts";
import { events, receiptFor, signed, start, wireToken } from "./_scripted_worker_fixture.ts";

/** Three UTF-8 bytes that NFKC turns into 18 characters, 33 bytes. */
const NFKC_PROMPT = "\uFDFA";
/** What a byte-level tokenizer with an NFKC normalizer honestly counts for it. */
const NFKC_COUNT = 33;
/** The window the worker states: the built-in tiny model's. */
const WINDOW = 256;

/** Answers `connection_to` with the open connection to the key asked. */
class WorkersByKey extends Workers {
  override receive(message: NetworkMessage): unknown {
    if (message.type !== "connection_to") return super.receive(message);
    return this.connections.find((c) => !c.isClosed && bytesEqual(c.peerKey!, message.key));
  }
}

/**
 * A router without the model and an honest NFKC worker: its start states {@link WINDOW} and
 * counts {@link NFKC_COUNT}, it streams every token, and each connection answers the receipt
 * request with its receipt signing that count. `dir`: the router keeps its lost ends there.
 */
async function setUp(name: string, dir?: string) {
  const system = new ActorSystem({ name });
  const router = Identity.generate();
  const worker = Identity.generate();
  const workers = new WorkersByKey([]);
  /** The job as the router sent it (naming the router as its requester). */
  let sent: TextJob | undefined;
  /** A new connection router — worker, added to the router's network. */
  const connect = async () => {
    const [a, b] = memoryDuplexPair();
    const protocols = [INFERENCE_PROTOCOL];
    const [toWorker, atWorker] = await Promise.all([
      Connection.open(a, { identity: router, protocols }),
      Connection.open(b, { identity: worker, protocols }),
    ]);
    atWorker.handle(SubmitMessage, (body) => {
      sent = body.job as TextJob;
      const model = { ...INFO, contextLength: WINDOW };
      const list: InferenceEvent[] = [start(body.job, { model, promptTokens: NFKC_COUNT })];
      for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
      return Promise.resolve(signed(events(list), worker, body)); // its end never comes
    });
    atWorker.handle(ReceiptRequestMessage, () => {
      const { sig: _s, worker: _w, ...unsigned } = receiptFor(sent!, worker, TEXT, TOKENS);
      return { receipt: signReceipt({ ...unsigned, promptTokens: NFKC_COUNT }, worker) };
    });
    workers.connections.push(toWorker);
    return { toWorker, atWorker };
  };
  const network = await system.spawn<NetworkMessage>({
    name: "r/network",
    factory: () => workers,
  });
  const recorder = new Recorder();
  const validator = await system.spawn<ValidatorMessage>({
    name: "r/validator",
    factory: () => recorder,
  });
  const lostEndsDir = dir === undefined ? undefined : join(dir, LOST_ENDS_DIR);
  /** The router's forwarding port, as a node (re)starting builds it. */
  const port = () => {
    const timers = new ManualTimers();
    const options = { tokensPerEvent: 1, timers, queueHoldMs: Infinity, lostEndsDir };
    return { port: new NetworkInferencePort(network, validator, router, options), timers };
  };
  return { system, worker, workers, recorder, connect, port };
}

type Setup = Awaited<ReturnType<typeof setUp>>;

/** Run the NFKC job through `port`, reading every token, then lose the worker's connection. */
async function loseEnd(t: Setup, port: NetworkInferencePort, nonce: string): Promise<void> {
  const first = await t.connect();
  const handle = await port.submit({ ...jobFor(nonce), prompt: NFKC_PROMPT });
  let text = "";
  for await (const token of handle.tokens) text += token.text;
  assert.equal(text, TEXT);
  await first.toWorker.close();
  await first.atWorker.close();
  const summary = await handle.done;
  assert.equal(summary.error?.code, "connection_closed");
  assert.equal(summary.usage.promptTokens, NFKC_COUNT, "the client was told another count");
}

/**
 * The worker back on a new connection, `timers`' first ask made: whether the late receipt went
 * to the validator (with its count) or the worker was kept off the model.
 */
async function askedBack(t: Setup, timers: ManualTimers) {
  await t.connect();
  await timers.advance(LOST_END_FIRST_ASK_MS);
  const key = toHex(t.worker.publicKey);
  const counts = () =>
    t.recorder.told.filter((m) => m.type === "receipt")
      .map((m) => (m as { receipt: { promptTokens?: number } }).receipt.promptTokens);
  await eventually(
    () => counts().length > 0 || t.workers.avoided.has(key),
    "the late receipt to be taken or refused",
  );
  return { counts: counts(), avoided: t.workers.avoided.has(key) };
}

Deno.test("a lost end's late receipt signing an honest NFKC count (33 for the 3-byte 'ﷺ', window 256 stated) reaches the validator, and the worker is not kept off the model", async () => {
  const t = await setUp("lost-end-nfkc");
  try {
    const { port, timers } = t.port();
    await loseEnd(t, port, "lost-end-nfkc");
    assert.deepEqual(await askedBack(t, timers), { counts: [NFKC_COUNT], avoided: false });
  } finally {
    await t.system.shutdown();
  }
});

Deno.test("a router restarted after a lost end checks the late receipt against the window kept on disk with it: the honest NFKC count (33) reaches the validator", async () => {
  const dir = await Deno.makeTempDir();
  const t = await setUp("lost-end-nfkc-restart", dir);
  try {
    await loseEnd(t, t.port().port, "lost-end-nfkc-restart");
    // Listed, not read with `LostEndFiles.all`, which clears a write's temporary file.
    await eventually(async () => {
      const entries = await Array.fromAsync(Deno.readDir(join(dir, LOST_ENDS_DIR)));
      return entries.filter((e) => e.name.endsWith(".cbor")).length === 1;
    }, "the lost end to be kept on disk");
    // The router restarts (its first port's asks never come: its timers never move).
    const after = t.port();
    await eventually(() => after.timers.pending > 0, "the kept lost end's ask to be armed");
    assert.deepEqual(await askedBack(t, after.timers), { counts: [NFKC_COUNT], avoided: false });
  } finally {
    await t.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a lost end kept before the window was (record version 1) still reads back, with no window", async () => {
  const dir = join(await Deno.makeTempDir(), LOST_ENDS_DIR);
  try {
    const requester = Identity.generate();
    const worker = Identity.generate().publicKey;
    const job: TextJob = { ...jobFor("v1"), requester: toHex(requester.publicKey) };
    const record = {
      v: 1,
      job,
      worker,
      relayed: { output: TEXT, tokens: TOKENS, resumedAt: 0, lastToken: "length" },
      summary: {
        jobId: jobId(job),
        finishReason: "error",
        usage: { promptTokens: 1, completionTokens: TOKENS },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      },
      assignment: signAssignment({ job, worker, issuedAt: 1 }, requester),
      expiresAt: 9_000,
    };
    await ReceiptFiles.in(join(dir, ".."), LOST_ENDS_DIR).save(jobId(job), record);
    const read = await new LostEndFiles(dir).all(0);
    assert.deepEqual(read.map((l) => [l.job.nonce, l.seen]), [["v1", undefined]]);
  } finally {
    await Deno.remove(join(dir, ".."), { recursive: true });
  }
});
