/**
 * Review s56 (red team) of the pledge sent ahead of a "proof withheld" claim (535043f). A claim is
 * cheap: any key with a pledge may sign one about any receipt still pending, and a pledge is valid
 * from any fresh key. Sent ahead out of the room kept back for the pledges a peer needs
 * (`PLEDGE_SEND_RESERVE`), as a fraud proof's is, a stream of fresh claimants — each pledge first
 * gossiped until the budget is down to that room, then one claim each — emptied the room to every
 * peer: the pledge of a worker whose receipts a peer refused for want of stake could no longer be
 * sent, and that worker's receipts stayed unrecorded there. A claim's pledge leaves half of that
 * room (`CLAIM_PLEDGE_RESERVE`); past it the claim goes alone and is held until the pledge comes.
 */
import assert from "node:assert/strict";
import { PledgeBudget } from "../../network/pledge_budget.ts";
import { CLAIM_PLEDGE_RESERVE, type PledgePeer, PledgeSync } from "../../network/pledge_sync.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  PLEDGE_SEND_BURST,
  PLEDGE_SEND_RESERVE,
  signStakePledge,
  type StakePledge,
} from "../../protocols/stake_pledge.ts";

Deno.test("red team s56: fresh claimants' claims do not spend the room kept for the pledges a peer needs", () => {
  const peer = Identity.generate();
  const sent: string[] = [];
  const connection = {
    isClosed: false,
    peerKey: peer.publicKey,
    supports: () => true,
    notify: (_: unknown, body: { pledge: StakePledge }) => {
      sent.push(toHex(body.pledge.key));
      return Promise.resolve();
    },
  } as unknown as Connection;
  // The send budget a NetworkActor keeps per peer key, on a clock that stands still.
  const pledges = new PledgeBudget({ now: () => 0 });
  const entries: PledgePeer[] = [{ connection, pledges }];
  const sync = new PledgeSync({
    peers: new Map([[toHex(peer.publicKey), entries]]),
    entryOf: (c) => entries.find((e) => e.connection === c),
    validator: () => undefined,
    tell: () => {},
    log: () => {},
  });
  const fresh = () => signStakePledge(Identity.generate(), 1_000, 1);

  // A flood of fresh keys' pledges through this node: gossip stops at the kept room.
  for (let i = 0; i < PLEDGE_SEND_BURST; i++) sync.relayPledge(fresh(), undefined);
  assert.equal(sent.length, PLEDGE_SEND_BURST - PLEDGE_SEND_RESERVE);
  // Then a claim from each of as many fresh claimants (each pledge recorded here, not gossiped
  // to the peer for want of room): the pledge ahead of each, as `publish_accusation` sends it.
  for (let i = 0; i < PLEDGE_SEND_RESERVE; i++) {
    sync.sendAhead(connection, fresh(), "withheld");
  }
  // Half of the kept room went ahead of the first claims (right after the connect push the
  // budget is down to it, and a claim then still goes with its pledge).
  assert.equal(sent.length, PLEDGE_SEND_BURST - PLEDGE_SEND_RESERVE + CLAIM_PLEDGE_RESERVE);
  // The peer refuses an honest worker's receipt for want of its stake: its pledge must go.
  const worker = fresh();
  sync.pushPledges({ type: "push_pledges", connection, pledges: [worker], needed: true });
  assert.ok(
    sent.includes(toHex(worker.key)),
    `the pledge the peer needs was sent (${sent.length} pledges went, the kept room spent)`,
  );
});
