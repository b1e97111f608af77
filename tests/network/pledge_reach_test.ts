/**
 * A pledge reaches every connected ledger, whatever the send budget (review s82 sim F1): a pledge
 * passed on past a peer's budget is queued and sent as the budget refills, not dropped; and a
 * plain verdict goes after its author's pledge, so a ledger the pledge has not reached yet records
 * the verdict rather than refusing it (`network/pledge_sync.ts`, `network/_peer_gossip.ts`).
 *
 * A and B are real nodes (NetworkActor, ValidatorActor, ledger on disk), joined in memory. A
 * flooder connected to A alone sends it fresh keys' pledges, more than A's budget to B lets it
 * pass on at once. The budgets run on the test's clock, which moves only by hand.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Account } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { StakeAnnouncementMessage } from "../../protocols/inference_messages.ts";
import { receiptId } from "../../protocols/receipt.ts";
import {
  PLEDGE_SEND_BURST,
  PLEDGE_SEND_REFILL_MS,
  PLEDGE_SEND_RESERVE,
  signStakePledge,
} from "../../protocols/stake_pledge.ts";
import { signVerdict, type Verdict } from "../../protocols/verdict.ts";
import { settle } from "../protocols/_helpers.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  attachValidationPeer,
  handReceipt,
  honestReceipt,
  joinLedgerNodes,
  spawnFreshPledgedNode,
} from "./_ledger_node.ts";

/** Fresh keys' pledges: more than A may pass on to B at once (under the flooder's own budget). */
const FLOOD = 100;

async function inPair(
  name: string,
  test: (
    nodes: Awaited<ReturnType<typeof pair>>,
    clock: { t: number },
  ) => Promise<void>,
): Promise<void> {
  const clock = { t: 1_000_000 };
  const system = new ActorSystem({ name });
  const dir = await Deno.makeTempDir();
  try {
    await test(await pair(system, dir, () => clock.t), clock);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

async function pair(system: ActorSystem, dir: string, now: () => number) {
  const a = await spawnFreshPledgedNode(system, dir, "a", now);
  const b = await spawnFreshPledgedNode(system, dir, "b", now);
  const ab = await joinLedgerNodes(a, b);
  const stake = (n: typeof a, key: Uint8Array) =>
    n.validator.ask<Account>({ type: "account", key }).then((x) => x.stake);
  await eventually(async () => (await stake(b, a.identity.publicKey)) > 0 || undefined, "B has A");
  /** Everything A sent B so far has reached B's ledger (A's network, then the link, drained). */
  const drained = async () => {
    await a.network.ask({ type: "peers" });
    await ab.ping();
    await settle();
    await b.validator.ask({ type: "stats" });
  };
  /** `count` fresh keys pledge 1,000 each to A from one peer; their keys. */
  const flood = async (count: number) => {
    const flooder = await attachValidationPeer(a);
    const keys: Identity[] = [];
    for (let i = 0; i < count; i++) {
      const key = Identity.generate();
      keys.push(key);
      await flooder.notify(StakeAnnouncementMessage, { pledge: signStakePledge(key, 1_000, 1) });
    }
    await eventually(
      async () => (await stake(a, keys.at(-1)!.publicKey)) === 1_000 || undefined,
      "A records the flood",
    );
    await drained();
    assert.ok(!flooder.isClosed, "the flooder stayed within its budget: not cut off");
    return keys;
  };
  return { a, b, ab, stake, drained, flood };
}

Deno.test("pledges A passes on past its budget to B are queued and sent as it refills: every one reaches B's ledger", () =>
  inPair("pledge-queue", async ({ a, b, ab, stake, drained, flood }, clock) => {
    const keys = await flood(FLOOD);
    const inB = async () =>
      (await Promise.all(keys.map((k) => stake(b, k.publicKey)))).filter((s) => s > 0).length;
    // At once, only what the budget lets through (its burst, less A's own pledge and the reserve).
    const atOnce = await inB();
    assert.ok(atOnce <= PLEDGE_SEND_BURST - PLEDGE_SEND_RESERVE, `${atOnce} at once`);
    assert.ok(atOnce < FLOOD);
    // The budget refills (ten minutes a step, by hand): what was queued goes, in steps.
    for (let step = 0; step < 4; step++) {
      clock.t += 50 * PLEDGE_SEND_REFILL_MS;
      a.network.tell({ type: "send_owed_pledges" });
      await drained();
    }
    assert.equal(await inB(), FLOOD, "every pledge A recorded reached B's ledger");
    for (const k of keys) assert.equal(await stake(b, k.publicKey), 1_000);
    assert.ok(!ab.isClosed, "A and B stay connected: B refused nothing");
  }));

Deno.test("a plain verdict passed on to a ledger that lacks its author's pledge goes after the pledge: that ledger records the verdict", () =>
  inPair("verdict-pledge", async ({ a, b, stake, drained, flood }) => {
    // A's budget to B is spent down to its reserve: V's pledge, passed on now, does not reach B.
    await flood(FLOOD);
    const v = Identity.generate();
    const vConn = await attachValidationPeer(a, v);
    await vConn.notify(StakeAnnouncementMessage, { pledge: signStakePledge(v, 7_000, 1) });
    await eventually(
      async () => (await stake(a, v.publicKey)) === 7_000 || undefined,
      "A records V's pledge",
    );
    await drained();
    assert.equal(await stake(b, v.publicKey), 0, "B has not heard of V");

    // A worker's receipt, pending in both ledgers; V's inconclusive verdict about it reaches A.
    const worker = Identity.generate();
    for (const n of [a, b]) {
      await n.validator.ask({ type: "deposit", key: worker.publicKey, amount: 1_000_000 });
    }
    const r = honestReceipt(3, worker);
    for (const n of [a, b]) assert.equal((await handReceipt(n, r, 3)).recorded, true);
    const id = receiptId(r);
    const verdict = signVerdict({
      v: 1,
      subject: "inference",
      subjectId: id,
      target: worker.publicKey,
      outcome: "inconclusive",
      reason: "model_unavailable",
      issuedAt: Date.now(),
    }, v);
    const recorded = await a.validator.ask({
      type: "verdict",
      verdict,
      origin: toHex(v.publicKey),
    });
    assert.ok(recorded, "A records V's verdict: V has stake there");
    const byV = async () =>
      (await b.validator.ask<Verdict[]>({ type: "verdicts", receiptId: id }))
        .filter((x) => toHex(x.validator) === toHex(v.publicKey)).length;
    await eventually(async () => (await byV()) === 1 || undefined, "B records V's verdict", {
      timeoutMs: 5_000,
    });
    // B's ledger: V's stake, pledged ahead of the verdict; the receipt still pending, nobody paid.
    assert.equal(await stake(b, v.publicKey), 7_000, "V's pledge came with its verdict");
    const status = await b.validator.ask<{ status: string }>({
      type: "receipt_status",
      receiptId: id,
    });
    assert.equal(status.status, "pending");
    const workerInB = await b.validator.ask<Account>({ type: "account", key: worker.publicKey });
    assert.equal(workerInB.stake, 1_000_000, "an inconclusive verdict slashes nobody");
    assert.equal(workerInB.balance, 0);
  }));
