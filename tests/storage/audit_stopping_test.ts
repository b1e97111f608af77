/**
 * `StorageAuditor`'s `stopping` (stop 63): a holder's answer that fails while the auditor's own node
 * is stopping (its network closed the connection) judges no one; a wrong answer is still judged, and
 * a failed one while the node runs is `no_response` as before.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { ConnectionClosedError } from "../../protocols/protocol_errors.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import { MemoryPeer } from "./_memory_peer.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";

/** A holder whose connection is closed: every challenge fails at once. */
class ClosedHolder extends MemoryPeer {
  override proveChunks(): Promise<(Uint8Array | null)[]> {
    return Promise.reject(new ConnectionClosedError("connection is closed"));
  }
}

/** A holder that answers every challenge with made-up proofs. */
class LyingHolder extends MemoryPeer {
  override proveChunks(_nonce: Uint8Array, cids: readonly string[]) {
    return Promise.resolve(cids.map(() => new Uint8Array(32)));
  }
}

/** Audit `holder` on two chunks this auditor holds, with its node `stopping` or not. */
async function auditWith(holder: MemoryPeer, stopping: boolean) {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const chunks = [
      await store.put(pseudoRandomBytes(512, 1)),
      await store.put(pseudoRandomBytes(512, 2)),
    ];
    const verdicts: Verdict[] = [];
    const auditor = new StorageAuditor({
      identity: Identity.generate(),
      reference: (cid) => store.get(cid),
      sampleSize: chunks.length,
      stopping: () => stopping,
      onVerdict: (verdict) => void verdicts.push(verdict),
    });
    const result = await auditor.audit(holder, chunks).catch((error: Error) => error);
    return { result, verdicts };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("an auditor whose node is stopping judges no holder whose answer failed: the audit is called off", async () => {
  const { result, verdicts } = await auditWith(new ClosedHolder(), true);
  assert.ok(result instanceof DOMException && result.name === "AbortError", String(result));
  assert.deepEqual(verdicts, []);
});

Deno.test("a failed answer while the node runs is no_response, and a wrong one is judged even while it stops", async () => {
  const running = await auditWith(new ClosedHolder(), false);
  assert.deepEqual(running.verdicts.map((v) => v.reason), ["no_response"]);
  const lying = await auditWith(new LyingHolder(), true);
  assert.deepEqual(lying.verdicts.map((v) => v.reason), ["wrong_proof"]);
});
