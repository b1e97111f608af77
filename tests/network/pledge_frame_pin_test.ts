/**
 * A pledge that arrives in a padded frame is kept as its own bytes (review s81 wire, F1): a peer
 * padded `validation.stake` with a field the body schema drops, and the ledger kept the pledge's
 * `sig` as a view of the whole ~900 KB frame, for as long as the node ran: a fresh key's pledge
 * cost the node up to a frame's 1 MiB, not the ~150 bytes the ledger documents. The frame's byte
 * strings are now copies of their own when decoded (`decodeCheckedCbor`).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Account } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { StakeAnnouncementMessage } from "../../protocols/inference_messages.ts";
import { signStakePledge, type StakePledge } from "../../protocols/stake_pledge.ts";
import { eventually } from "../_helpers/wait.ts";
import { attachValidationPeer, spawnLedgerNode } from "./_ledger_node.ts";

const MODELS = { has: () => true, get: () => Promise.resolve(undefined) };
/** One text string: costs the frame bytes, not values, and the body schema drops it. */
const PAD = "x".repeat(900_000);

Deno.test("a pledge from a frame padded to ~900 KB is recorded, and the ledger keeps its key and signature as their own bytes, not the frame", async () => {
  const system = new ActorSystem({ name: "pledge-frame-pin" });
  const dir = await Deno.makeTempDir();
  try {
    const identity = Identity.generate();
    const node = await spawnLedgerNode(system, dir, "a", {
      identity,
      pledge: signStakePledge(identity, 5_000, 1),
      models: MODELS,
    });
    const peer = await attachValidationPeer(node);
    const keys = [Identity.generate(), Identity.generate(), Identity.generate()];
    for (const k of keys) {
      await peer.notify(
        StakeAnnouncementMessage,
        { pledge: signStakePledge(k, 100, 1), pad: PAD } as { pledge: StakePledge },
      );
    }
    for (const k of keys) {
      // The ledger's outcome: the pledge is recorded (its stake counts), nothing else changed.
      await eventually(
        async () =>
          (await node.validator.ask<Account>({ type: "account", key: k.publicKey })).stake ===
            100 || undefined,
        "pledge recorded",
      );
      const account = await node.validator.ask<Account>({ type: "account", key: k.publicKey });
      assert.deepEqual([account.balance, account.stake, account.locked], [0, 100, 0]);
      const [kept] = await node.validator.ask<StakePledge[]>({ type: "pledges", key: k.publicKey });
      assert.deepEqual(kept.key, k.publicKey);
      // Failed before the fix: 900,1xx bytes (the whole frame) behind each.
      assert.equal(kept.sig.buffer.byteLength, 64, "the kept pledge's signature pins its frame");
      assert.equal(kept.key.buffer.byteLength, 32, "the kept pledge's key pins its frame");
    }
    await peer.close();
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
