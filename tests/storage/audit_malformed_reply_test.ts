/**
 * A holder that answers an audit, in time, with a reply that fails the `storage.proofs` schema is
 * signed `malformed_proof`, not `no_response` (review s75, finding 4); a holder that does not
 * answer (its handler fails, the connection closes, the deadline passes) is still `no_response`.
 * Served over a real `Connection`, where the reply is checked on the auditor's side.
 */
import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import { ConnectionStoragePeer, serveStoragePeer } from "../../storage/connection_storage_peer.ts";
import { MemoryPeer } from "./_memory_peer.ts";

const CHUNK = new TextEncoder().encode("an audited chunk ".repeat(20));
const CID = cidOf(CHUNK);

/** A holder whose answer to `prove` is `answer` (any shape: the wire checks it, not the type). */
class Answering extends MemoryPeer {
  constructor(readonly answer: (connection: Connection) => Promise<unknown>) {
    super();
  }
  override proveChunks(): Promise<(Uint8Array | null)[]> {
    return this.answer(this.served!) as Promise<(Uint8Array | null)[]>;
  }
  served: Connection | undefined;
}

async function auditOnce(
  answer: (served: Connection) => Promise<unknown>,
  timeoutMs = 5_000,
): Promise<{ reasons: string[]; verdict: Verdict | undefined }> {
  const holder = new Answering(answer);
  holder.chunks.set(CID, CHUNK);
  const [a, b] = memoryDuplexPair();
  holder.served = new Connection(b);
  const server = serveStoragePeer(holder.served, holder);
  const client = new Connection(a);
  const verdicts: Verdict[] = [];
  const auditor = new StorageAuditor({
    identity: Identity.generate(),
    reference: () => Promise.resolve(CHUNK),
    sampleSize: 1,
    timeoutMs,
    onVerdict: (v) => void verdicts.push(v),
  });
  try {
    const result = await auditor.audit(new ConnectionStoragePeer(client, holder.publicKey), [CID]);
    return { reasons: result.failures.map((f) => f.reason), verdict: verdicts[0] };
  } finally {
    await client.close();
    await server.close();
  }
}

Deno.test("a proof of the wrong length in the reply is malformed_proof", async () => {
  const { reasons, verdict } = await auditOnce(() => Promise.resolve([new Uint8Array(31)]));
  assert.deepEqual(reasons, ["malformed_proof"]);
  assert.equal(verdict?.reason, "malformed_proof");
});

Deno.test("a string in place of a proof's bytes is malformed_proof", async () => {
  const { reasons } = await auditOnce(() => Promise.resolve(["garbage"]));
  assert.deepEqual(reasons, ["malformed_proof"]);
});

Deno.test("a holder whose handler fails (an error reply, no proofs) is still no_response", async () => {
  const { reasons } = await auditOnce(() => Promise.reject(new Error("boom")));
  assert.deepEqual(reasons, ["no_response"]);
});

Deno.test("a holder that closes the connection instead of answering is still no_response", async () => {
  const { reasons } = await auditOnce(async (served) => {
    await served.close();
    return await new Promise(() => {});
  });
  assert.deepEqual(reasons, ["no_response"]);
});

Deno.test({
  name: "a holder that never answers is still no_response once the deadline passes",
  // The never-settling handler leaves its promise behind on the served side.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // No race: the answer never comes, so the deadline decides however slow the machine is.
    const { reasons } = await auditOnce(() => new Promise(() => {}), 50);
    assert.deepEqual(reasons, ["no_response"]);
  },
});
