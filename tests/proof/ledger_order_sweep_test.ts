/**
 * Every order of the settlements one job can meet on a ledger ends at the same accounts (review
 * s79 vledger: the reviewer's order sweep, made a test). R is the worker's receipt recorded here
 * (lock 80), R′ its other signed claim for the job (lock 800), known only from a peer's proof.
 * For each set of at least two of: a peer's proof of R, a peer's proof of R′, this ledger's
 * steering conviction (R its evidence), and at most one of this ledger's own challenge endings
 * (a fault, or undecided), every order, then the window ends: the worker's account and what the
 * accusers earn together are the same in every order (how two accusers split it may differ), the
 * accusers never earn more than `validatorRewardShare ×` what the worker lost, and every lock is
 * released. Each run is read again after the index is rebuilt from the log (`runOrder`). With a
 * stake of 10,000 the larger claim is covered; with 200 it is not.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { roundCredits } from "../../proof/ledger_state.ts";
import {
  type EventName,
  EVENTS,
  honestAfterDeposit,
  orders,
  runOrder,
  windowEnds,
} from "./_ledger_order_run.ts";

const PEER_EVENTS: EventName[] = ["proveR", "proveVariant", "steer"];
const OWN_ENDINGS: EventName[][] = [[], ["fault"], ["unresolved"]];

/** Every set of at least two events: any of the peer events, with at most one own ending. */
function eventSets(): EventName[][] {
  const sets: EventName[][] = [];
  for (const own of OWN_ENDINGS) {
    for (let mask = 1; mask < 1 << PEER_EVENTS.length; mask++) {
      const peer = PEER_EVENTS.filter((_, i) => mask & (1 << i));
      if (peer.length + own.length >= 2) sets.push([...own, ...peer]);
    }
  }
  return sets;
}

for (const stake of [10_000, 200]) {
  Deno.test(`ledger order sweep: every order of R's and R′'s settlements ends the same, stake ${stake}`, async () => {
    const disagree: string[] = [];
    for (const set of eventSets()) {
      const ends = new Map<string, string[]>();
      for (const order of orders(set)) {
        const o = await runOrder(stake, [...order.map((name) => EVENTS[name]), windowEnds]);
        const lost = roundCredits(stake - o.worker.stake - o.worker.balance);
        const earned = roundCredits(o.a1.balance + o.a2.balance);
        const label = order.join(">");
        assert.ok(
          earned <= roundCredits(lost * DEFAULT_ECONOMICS.validatorRewardShare),
          `${label}: accusers earned ${earned} of ${lost} lost`,
        );
        assert.equal(o.worker.locked, 0, `${label}: every lock released`);
        const end = JSON.stringify({ worker: o.worker, accusers: earned, owner: o.owner });
        ends.set(end, [...(ends.get(end) ?? []), label]);
      }
      if (ends.size > 1) {
        disagree.push(`{${set}}: ${[...ends].map(([end, by]) => `${end} <- ${by.join(" | ")}`)}`);
      }
    }
    assert.deepEqual(disagree, []);
  });
}

Deno.test("ledger order sweep: the equivocation's larger claim is slashed once, whatever else came", async () => {
  // The end every order above agrees on, pinned: 800 lost (or all 200), half of it earned.
  for (const [stake, kept, earned] of [[10_000, 9_200, 400], [200, 0, 100]]) {
    const o = await runOrder(stake, [EVENTS.fault, EVENTS.steer, EVENTS.proveVariant, windowEnds]);
    assert.equal(o.worker.stake, kept);
    assert.equal(o.a1.balance + o.a2.balance, earned);
  }
});

Deno.test("ledger order sweep: a stream conviction that left the stake short of the locks, the steering conviction and a proof of R, in every order: nothing stays locked and the worker's next honest receipt is recorded", async () => {
  // Review vled F1: stake 200, R (lock 80) and another receipt (lock 40) both steering
  // evidence; the stream cut (100) leaves 100 against 120 locked where it comes before the
  // steering one. The conviction freed only what it cut (100 of 120, or 20 of 40 after R's
  // proof), the rest stayed locked until the windows closed, and the honest receipt (lock 800
  // after a deposit of 800) was refused insufficient_stake in those orders only. How the rewards
  // split between the stream conviction and R's proof follows which cut came first (the later
  // takes what is left), so only the worker's end is compared.
  const disagree: string[] = [];
  for (const set of [["stream", "steer"], ["stream", "steer", "proveR"]] as EventName[][]) {
    const ends = new Map<string, string[]>();
    for (const order of orders(set)) {
      const o = await runOrder(200, [
        ...order.map((n) => EVENTS[n]),
        honestAfterDeposit,
        windowEnds,
      ], {
        extra: [2],
      });
      const label = order.join(">");
      // Staked 200 + 800, the honest receipt's 40 earned: what the convictions took.
      const lost = roundCredits(1_040 - o.worker.stake - o.worker.balance);
      const earned = roundCredits(o.a1.balance + o.a2.balance + o.owner.balance);
      assert.ok(earned <= roundCredits(lost * DEFAULT_ECONOMICS.validatorRewardShare), label);
      const end = JSON.stringify({ worker: o.worker, codes: o.codes.slice(set.length) });
      ends.set(end, [...(ends.get(end) ?? []), label]);
    }
    if (ends.size > 1) {
      disagree.push(`{${set}}: ${[...ends].map(([end, by]) => `${end} <- ${by.join(" | ")}`)}`);
    }
    // The end every order agrees on: all 200 taken, the honest receipt recorded and paid 40.
    const [end] = ends.keys();
    assert.equal(
      end,
      JSON.stringify({
        worker: { balance: 40, stake: 800, locked: 0 },
        codes: ["ok", "ok"],
      }),
    );
  }
  assert.deepEqual(disagree, []);
});

/**
 * Plays every order of `set` (then the window's end) for each stake and returns what disagrees:
 * an order whose worker lost other than the larger claim's slash (800, the stake at most), kept a
 * lock, or paid an accuser more than its share of the claim it proved (R: 80, R′: 800); and a
 * set whose orders end at other accounts (the worker's, the accusers' together, the owner's).
 */
async function sweepSteeringThenArrival(set: EventName[]): Promise<string[]> {
  const share = DEFAULT_ECONOMICS.validatorRewardShare;
  const disagree: string[] = [];
  for (const stake of [10_000, 200]) {
    const ends = new Map<string, string[]>();
    for (const order of orders(set)) {
      const o = await runOrder(stake, [...order.map((name) => EVENTS[name]), windowEnds]);
      const label = `${stake}: ${order.join(">")}`;
      const lost = roundCredits(stake - o.worker.stake - o.worker.balance);
      const earned = roundCredits(o.a1.balance + o.a2.balance);
      const wrong = [
        lost !== Math.min(800, stake) && `lost ${lost}`,
        o.worker.locked !== 0 && `locked ${o.worker.locked}`,
        o.a1.balance > 80 * share && `a1 earned ${o.a1.balance}`,
        o.a2.balance > 800 * share && `a2 earned ${o.a2.balance}`,
        earned > roundCredits(lost * share) && `earned ${earned} of ${lost}`,
      ].filter(Boolean);
      if (wrong.length > 0) disagree.push(`${label}: ${wrong.join(", ")} (${o.codes})`);
      const end = JSON.stringify({ worker: o.worker, accusers: earned, owner: o.owner });
      ends.set(end, [...(ends.get(end) ?? []), label]);
    }
    if (ends.size > 1) {
      disagree.push(`{${set}}: ${[...ends].map(([end, by]) => `${end} <- ${by.join(" | ")}`)}`);
    }
  }
  return disagree;
}

Deno.test("ledger order sweep: a steering conviction and R′ arriving itself (its equivocation) slash the larger claim once, in every order, with a proof of R or of R′ too", async () => {
  // Stop 80, ledger item 2: the steering cut took R's lock; R′ arriving after it is the worker's
  // equivocation, which cuts only what the larger claim adds (it cut all 800 again: 880 lost,
  // where R′ first lost 800), and each accuser is paid once, out of what was taken.
  const disagree: string[] = [];
  for (const proofs of [[], ["proveR"], ["proveVariant"]] as EventName[][]) {
    disagree.push(...await sweepSteeringThenArrival(["steer", "variantArrives", ...proofs]));
  }
  assert.deepEqual(disagree, []);
});

Deno.test({
  // Still open (docs/PROOF.md "Finality and the ledger", stop 80): R′'s own arrival settles the
  // equivocation with no accuser; the one proof that slash then pays is whichever comes first.
  // A proof of R first earns its 40 and the slash counts as rewarded, so a proof of R′ after it
  // is refused `not_pending` (the 360 it earns where R′ never arrives is burned); a proof of R′
  // first earns 400. The worker ends alike; the accusers earn 40 or 400 by arrival.
  name:
    "ledger order sweep: R′ arriving itself, then proofs of R and R′: the accusers earn the same in every order",
  ignore: true,
  fn: async () => {
    assert.deepEqual(
      await sweepSteeringThenArrival(["variantArrives", "proveR", "proveVariant"]),
      [],
    );
  },
});
