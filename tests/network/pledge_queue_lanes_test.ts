/**
 * What a node's queue of pledges for a peer sends, and when (review s82 vpledge,
 * `network/pledge_sync.ts`): a plain verdict goes after its author's pledge only when the peer key
 * may lack it, so verdict traffic does not starve the queue (F1); and a pledge relayed after the
 * queue filled (a flood, or the connect push to a node joining a big ledger) goes ahead of the
 * connect push's backlog and is not dropped, so it reaches the peer (F2).
 *
 * A and B are real nodes (NetworkActor, ValidatorActor, ledger on disk), joined in memory. The
 * budgets run on the test's clock, which moves only by hand; A's queue is told to drain at each
 * step (`send_owed_pledges`), as its timer would.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Account } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Connection } from "../../protocols/connection.ts";
import { StakeAnnouncementMessage } from "../../protocols/inference_messages.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { PLEDGE_SEND_REFILL_MS, signStakePledge } from "../../protocols/stake_pledge.ts";
import { signVerdict } from "../../protocols/verdict.ts";
import { settle } from "../protocols/_helpers.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  attachValidationPeer,
  handReceipt,
  honestReceipt,
  joinLedgerNodeEnds,
  spawnFreshPledgedNode,
} from "./_ledger_node.ts";

type LedgerNode = Awaited<ReturnType<typeof spawnFreshPledgedNode>>;

/** Two fresh nodes on a clock moved by hand; `test` joins them when it needs to. */
async function withNodes(
  name: string,
  test: (a: LedgerNode, b: LedgerNode, clock: { t: number }) => Promise<void>,
): Promise<void> {
  const clock = { t: 1_000_000 };
  const system = new ActorSystem({ name });
  const dir = await Deno.makeTempDir();
  try {
    const now = () => clock.t;
    const a = await spawnFreshPledgedNode(system, dir, "a", now);
    const b = await spawnFreshPledgedNode(system, dir, "b", now);
    await test(a, b, clock);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

function stake(node: LedgerNode, key: Uint8Array): Promise<number> {
  return node.validator.ask<Account>({ type: "account", key }).then((x) => x.stake);
}

/** Join A to B, wait until B holds A's pledge; A's end of the link. */
async function join(a: LedgerNode, b: LedgerNode): Promise<Connection> {
  const [ab] = await joinLedgerNodeEnds(a, b);
  await eventually(async () => (await stake(b, a.identity.publicKey)) > 0 || undefined, "B has A");
  return ab;
}

/** Everything A sent B so far has reached B's ledger. */
async function drained(a: LedgerNode, b: LedgerNode, ab?: Connection): Promise<void> {
  await a.network.ask({ type: "peers" });
  await ab?.ping();
  await settle();
  await b.validator.ask({ type: "stats" });
}

/** `count` fresh keys pledge `amount` each to A from one peer; their keys. */
async function flood(a: LedgerNode, count: number, amount: number): Promise<Identity[]> {
  const flooder = await attachValidationPeer(a);
  const keys: Identity[] = [];
  for (let i = 0; i < count; i++) {
    const key = Identity.generate();
    keys.push(key);
    await flooder.notify(StakeAnnouncementMessage, { pledge: signStakePledge(key, amount, 1) });
  }
  await eventually(
    async () => (await stake(a, keys.at(-1)!.publicKey)) === amount || undefined,
    "A records the flood",
  );
  return keys;
}

/** 600 throw-away keys' pledges in A's ledger: 6 batches, 5 minutes apart (A's new-key budget). */
async function fill(a: LedgerNode, b: LedgerNode, clock: { t: number }, ab?: Connection) {
  for (let batch = 0; batch < 6; batch++) {
    if (batch > 0) clock.t += 5 * 60_000;
    await flood(a, 100, 1);
    await drained(a, b, ab);
  }
}

/** Validator V pledges 7,000 to A, then two hours of refills drain A's queue for B; V's stake in B. */
async function lateValidatorInB(
  a: LedgerNode,
  b: LedgerNode,
  clock: { t: number },
  ab: Connection,
): Promise<number> {
  const v = Identity.generate();
  const vConn = await attachValidationPeer(a, v);
  await vConn.notify(StakeAnnouncementMessage, { pledge: signStakePledge(v, 7_000, 1) });
  await eventually(async () => (await stake(a, v.publicKey)) === 7_000 || undefined, "A has V");
  await drained(a, b, ab);
  for (let step = 0; step < 12; step++) {
    clock.t += 50 * PLEDGE_SEND_REFILL_MS;
    a.network.tell({ type: "send_owed_pledges" });
    await drained(a, b, ab);
  }
  return stake(b, v.publicKey);
}

Deno.test("a pledge relayed after a flood filled the queue still reaches the peer once it drains", async () => {
  await withNodes("pledge-queue-flood", async (a, b, clock) => {
    const ab = await join(a, b);
    await fill(a, b, clock, ab);
    assert.equal(await lateValidatorInB(a, b, clock, ab), 7_000);
  });
});

Deno.test("a pledge relayed after the connect push to a joining node goes ahead of its backlog", async () => {
  await withNodes("pledge-queue-join", async (a, b, clock) => {
    await fill(a, b, clock);
    clock.t += 60 * 60_000;
    const ab = await join(a, b);
    await drained(a, b, ab);
    assert.equal(await lateValidatorInB(a, b, clock, ab), 7_000);
  });
});

/**
 * Ten minutes of A's queue for B draining, with six validators (both ledgers hold their pledges)
 * passing one verdict a minute each through A or not: how many of 100 queued pledges reached B,
 * and how many verdicts went after a pledge.
 */
async function drainWithVerdicts(verdicts: boolean) {
  let result = { drained: 0, withPledge: 0 };
  await withNodes(`pledge-queue-verdicts-${verdicts}`, async (a, b, clock) => {
    const vs = Array.from({ length: 6 }, () => Identity.generate());
    for (const v of vs) {
      for (const n of [a, b]) {
        const c = await attachValidationPeer(n, v);
        await c.notify(StakeAnnouncementMessage, { pledge: signStakePledge(v, 7_000, 1) });
      }
    }
    for (const v of vs) {
      await eventually(async () => (await stake(a, v.publicKey)) > 0 || undefined, "A has V");
      await eventually(async () => (await stake(b, v.publicKey)) > 0 || undefined, "B has V");
    }
    const ab = await join(a, b);
    const honest = await flood(a, 100, 1_000);
    await drained(a, b, ab);
    const inB = async () => {
      let n = 0;
      for (const k of honest) if ((await stake(b, k.publicKey)) > 0) n++;
      return n;
    };
    const atStart = await inB();
    const worker = Identity.generate();
    for (const n of [a, b]) {
      await n.validator.ask({ type: "deposit", key: worker.publicKey, amount: 1_000_000 });
    }
    let withPledge = 0;
    let receiptN = 10;
    for (let minute = 0; minute < 10; minute++) {
      for (const v of verdicts ? vs : []) {
        const r = honestReceipt(receiptN, worker);
        assert.equal((await handReceipt(a, r, receiptN)).recorded, true);
        receiptN++;
        const verdict = signVerdict({
          v: 1,
          subject: "inference",
          subjectId: receiptId(r),
          target: worker.publicKey,
          outcome: "inconclusive",
          reason: "model_unavailable",
          issuedAt: clock.t,
        }, v);
        await drained(a, b, ab);
        const before = ab.stats().framesSent;
        assert.ok(await a.validator.ask({ type: "verdict", verdict, origin: toHex(v.publicKey) }));
        await drained(a, b, ab);
        // The verdict and the ping of `drained`; one more: its author's pledge.
        if (ab.stats().framesSent - before === 3) withPledge++;
      }
      for (let step = 0; step < 5; step++) {
        clock.t += PLEDGE_SEND_REFILL_MS + 1;
        a.network.tell({ type: "send_owed_pledges" });
        await drained(a, b, ab);
      }
    }
    // The verdicts moved no stake, and B still holds the validators' pledges.
    for (const v of vs) assert.equal(await stake(b, v.publicKey), 7_000);
    result = { drained: (await inB()) - atStart, withPledge };
  });
  return result;
}

Deno.test("verdicts whose authors' pledges the peer holds do not starve the queue for it", async () => {
  const quiet = await drainWithVerdicts(false);
  const busy = await drainWithVerdicts(true);
  assert.ok(quiet.drained > 0, "without verdicts the queue drains");
  assert.ok(
    busy.drained >= quiet.drained - 6,
    `with verdicts ${busy.drained} queued pledges reached B, without ${quiet.drained}`,
  );
  assert.equal(busy.withPledge, 0, "B held every author's pledge: none went ahead again");
});
