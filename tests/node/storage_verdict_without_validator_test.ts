/**
 * A node with the storage role and without the validator role keeps no ledger (the ledger lives in
 * the validator), so its storage audits' signed verdicts have nowhere to be recorded: they are
 * logged, where before review s75 `lookup(validator)?.tell` dropped them without a word while
 * docs/STORAGE.md said they went to the node's ledger.
 */
import assert from "node:assert/strict";
import { NODE_ACTORS, startNode } from "../../node/node.ts";
import { parseNodeConfig } from "../../node/config.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import type { StoragePeer } from "../../storage/storage_peer.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";

/** A holder that answers every challenge with a proof of 32 zero bytes: `wrong_proof`. */
function wrongProver(): StoragePeer {
  const publicKey = Identity.generate().publicKey;
  return {
    id: Array.from(publicKey, (b) => b.toString(16).padStart(2, "0")).join(""),
    publicKey,
    putChunk: () => Promise.resolve(),
    getChunk: (cid) => Promise.reject(new ChunkNotFoundError(cid)),
    hasChunk: () => Promise.resolve(true),
    proveChunks: (_nonce, cids) => Promise.resolve(cids.map(() => new Uint8Array(32))),
  };
}

Deno.test("without the validator role, a storage audit's verdict is logged, not dropped unseen", async () => {
  const dataDir = await Deno.makeTempDir();
  const lines: string[] = [];
  const node = await startNode(
    parseNodeConfig({
      dataDir,
      http: { port: 0 },
      network: { listen: { port: 0 } },
      heartbeatMs: 0,
      roles: { inference: false, prover: false, validator: false },
      model: { workers: 0 },
    }),
    { log: (line) => lines.push(line) },
  );
  try {
    assert.equal(node.system.lookup(NODE_ACTORS.validator), undefined);
    const storage = node.system.lookup<StorageMessage>(NODE_ACTORS.storage)!;
    const bytes = new TextEncoder().encode("a chunk this node holds, and a holder cannot prove");
    const cid = cidOf(bytes);
    await storage.ask({ type: "put_chunk", cid, bytes });
    const holder = wrongProver();
    const reply = await storage.ask<{ ok: boolean; value?: { passed: boolean } }>({
      type: "audit",
      holder,
      cids: [cid],
    });
    assert.equal(reply.value?.passed, false, JSON.stringify(reply));
    const logged = lines.filter((l) => l.includes("audit verdict invalid/wrong_proof"));
    assert.equal(logged.length, 1, lines.join("\n"));
    assert.ok(logged[0].includes(holder.id));
  } finally {
    await node.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});
