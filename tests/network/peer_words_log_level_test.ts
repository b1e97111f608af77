/**
 * A peer's words reach the node's log quoted, so the JSON log (`node/log_format.ts`) takes no
 * level from them: a goodbye's reason (`network_actor.ts`), a ledger peer's refusal of a receipt
 * and its error reply (`_peer_gossip.ts`), each run end to end through a NetworkActor (review s77
 * vstr F2: "crashed", "escalated" or "gave up" in them made the node's line an `error`). The
 * node's own errors keep their words unquoted.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { errorWords } from "../../network/_peer_words.ts";
import { lineLogger, logRecord } from "../../node/log_format.ts";
import { Connection } from "../../protocols/connection.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  type ReceiptAckBody,
  ReceiptAnnouncementMessage,
  VALIDATION_PROTOCOL,
} from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { GOODBYE_PROTOCOL, PeerGoodbyeMessage } from "../../protocols/peer_goodbye.ts";
import { PEER_PROTOCOL } from "../../protocols/peer_hello.ts";
import { ConnectionClosedError, RemoteError } from "../../protocols/protocol_errors.ts";
import { inputHashOf, signReceipt, textOutputHash } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { params } from "../server/_fixtures.ts";

type LogLine = { level: string; msg: string };

/** A NetworkActor logging JSON lines into `lines`, and a bare peer connected to it. */
async function nodeAndPeer(validator: boolean) {
  const lines: string[] = [];
  const system = new ActorSystem({ name: "s77-peer-words" });
  const net = await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        // Named only so this node offers the validation protocol (both sides must).
        services: validator ? { validator: "node/validator" } : {},
        log: lineLogger("json", (line) => void lines.push(line)),
      }),
  });
  const [ours, theirs] = memoryDuplexPair();
  const [, peer] = await Promise.all([
    net.ask({ type: "attach", duplex: ours, address: "mem", outbound: true }),
    Connection.open(theirs, {
      identity: Identity.generate(),
      protocols: [PEER_PROTOCOL, GOODBYE_PROTOCOL, ...(validator ? [VALIDATION_PROTOCOL] : [])],
    }),
  ]);
  const lineWith = (words: string) =>
    eventually(
      () => lines.map((l) => JSON.parse(l) as LogLine).find((r) => r.msg.includes(words)),
      `a line with ${words}: ${lines.join("\n")}`,
    );
  const stop = async () => {
    await peer.close();
    await system.shutdown();
  };
  return { net, peer, lineWith, stop };
}

for (const reason of ["crashed", "escalated"]) {
  Deno.test(`a peer's goodbye reason "${reason}" is quoted and leaves the line info`, async () => {
    const { peer, lineWith, stop } = await nodeAndPeer(false);
    try {
      await peer.notify(PeerGoodbyeMessage, { reason });
      const line = await lineWith("stopped (");
      assert.equal(line.level, "info", line.msg);
      assert.match(line.msg, new RegExp(`stopped \\("${reason}"\\)$`));
    } finally {
      await stop();
    }
  });
}

const WORKER = Identity.generate();
const JOB: TextJob = {
  kind: "text",
  model: "bafkmodelm",
  prompt: "hi",
  params: params({ maxTokens: 3 }),
  nonce: "n",
};
const RECEIPT = signReceipt({
  v: 1,
  kind: "text",
  jobId: jobId(JOB),
  model: JOB.model,
  inputHash: inputHashOf(JOB),
  params: JOB.params,
  outputHash: textOutputHash("abc"),
  commitment: { scheme: "vf-fp1", root: "ab".repeat(32), chunkSize: 16, tokenBytes: 4 },
  tokenCount: 3,
  timings: { startedAt: 1, firstTokenMs: 1, totalMs: 2 },
}, WORKER);

for (
  const [how, answer, level] of [
    // "refused" is the node's own word in that line: a warning, as before.
    [
      "refusal",
      (): ReceiptAckBody => ({ recorded: false, refusal: "ledger crashed; gave up" }),
      "warn",
    ],
    ["error reply", (): ReceiptAckBody => {
      throw new VeriflowError("internal", "validator crashed, escalated");
    }, "info"],
  ] as const
) {
  Deno.test(`a ledger peer's ${how} to a receipt announcement is quoted and sets no error level`, async () => {
    const { net, peer, lineWith, stop } = await nodeAndPeer(true);
    try {
      peer.handle(ReceiptAnnouncementMessage, answer);
      await eventually(
        async () => (await net.ask<unknown[]>({ type: "peers" })).length === 1 || undefined,
        "the peer listed",
      );
      assert.equal(await net.ask({ type: "announce_receipt", receipt: RECEIPT, job: JOB }), 1);
      const line = await lineWith("crashed");
      assert.equal(line.level, level, line.msg);
      assert.match(line.msg, /"[^"]*crashed[^"]*"/, "the peer's words are quoted");
    } finally {
      await stop();
    }
  });
}

Deno.test("errorWords quotes a peer's error reply, not the node's own error", () => {
  const remote = errorWords(new RemoteError("internal", 'it "crashed"'));
  assert.equal(remote, 'the peer answered "internal: it \\"crashed\\""');
  assert.equal(logRecord(`peer ab: ${remote}`).level, "info");
  const own = errorWords(new ConnectionClosedError("connection closed: peer crashed"));
  assert.equal(own, "connection closed: peer crashed");
  assert.equal(logRecord(`peer ab: ${own}`).level, "error");
});
