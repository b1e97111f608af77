/**
 * The storage protocol is `storage/2` since the possession proof took the holder's key in (commit
 * 409b417): a node on older code offers `storage/1` and answers SHA-256(nonce ‖ chunk), which an
 * auditor on this code judged `wrong_proof` on every chunk, then swept and stripped it of all it
 * held within 2 rounds (review s75 verify, finding 1). Offering only version 2, a node negotiates
 * no storage with an older one: it never challenges it (nor gives it chunks), so never judges it.
 */
import assert from "node:assert/strict";
import { defineProtocol } from "../../protocols/connection_protocols.ts";
import { UnsupportedProtocolError } from "../../protocols/protocol_errors.ts";
import {
  AUDIT_NONCE_BYTES,
  ProveMessage,
  STORAGE_MESSAGES,
  STORAGE_PROTOCOL,
} from "../../protocols/storage_messages.ts";
import { ConnectionStoragePeer } from "../../storage/connection_storage_peer.ts";
import { openPair } from "../protocols/_helpers.ts";

/** What a node on code from before 409b417 offers: the same messages, as version 1. */
const STORAGE_V1 = defineProtocol("storage", 1, STORAGE_MESSAGES);
const A_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

Deno.test("a node on the storage protocol of before the keyed proof (storage/1) is never challenged by this one", async () => {
  const { client, server, close } = await openPair(
    { protocols: [STORAGE_PROTOCOL] },
    { protocols: [STORAGE_V1] },
  );
  try {
    let challenged = 0;
    server.handle(ProveMessage, () => {
      challenged++;
      return { proofs: [new Uint8Array(32)] };
    });
    // What the network asks before it makes a connection a storage peer (`network_actor.ts`).
    assert.equal(client.supports(STORAGE_PROTOCOL.name), false);
    const holder = new ConnectionStoragePeer(client, client.peerKey!);
    const sent = client.stats().framesSent;
    await assert.rejects(
      holder.proveChunks(new Uint8Array(AUDIT_NONCE_BYTES), [A_CID]),
      (e: unknown) => e instanceof UnsupportedProtocolError && e.code === "protocol_not_supported",
    );
    assert.equal(client.stats().framesSent, sent, "refused here: nothing went out");
    assert.equal(challenged, 0);
  } finally {
    await close();
  }
});

Deno.test("two nodes on this code negotiate storage (version 2)", async () => {
  const { client, close } = await openPair(
    { protocols: [STORAGE_PROTOCOL] },
    { protocols: [STORAGE_PROTOCOL] },
  );
  try {
    assert.equal(STORAGE_PROTOCOL.version, 2);
    assert.equal(client.supports(STORAGE_PROTOCOL.name), true);
  } finally {
    await close();
  }
});
