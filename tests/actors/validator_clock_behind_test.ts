/**
 * Review s75, F1: a ledger whose clock is behind the worker's must not slash an honest worker for
 * proof data it deleted by its own clock (`receipt_from_future` at intake; `proof_expired` for
 * data asked for after the worker's retention may have passed), while a worker that withholds
 * inside its retention is still a fault. Each case asserts L's accounts after the window.
 */
import assert from "node:assert/strict";
import { DEFAULT_PROOF_RETENTION_MS } from "../../actors/prover_actor.ts";
import { RECEIPT_FROM_FUTURE } from "../../actors/_receipt_intake.ts";
import {
  CLOCK_SKEW_MS,
  MIN_PROOF_RETENTION_MS,
  PROOF_DEADLINE_MS,
  proofMayBeExpired,
  STALE_RECEIPT_AGE_MS,
} from "../../proof/challenge_timing.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { withheldVerdict } from "./_validator_fixture.ts";
import { liarWorld, WORKER_STAKE } from "./_liar_world.ts";

const MIN = 60_000;
const FREE = { balance: 0, stake: WORKER_STAKE, locked: 0 };

Deno.test("a ledger 30 min slow refuses a receipt signed 5 min ahead of its clock (receipt_from_future): the honest worker is not asked and keeps its stake (B3)", async () => {
  // Real time: 25 min after the worker signed; its 21-min retention has passed, so it serves
  // nothing. L's clock reads 5 min before the signed end.
  const clock = { t: 0 };
  const t = await liarWorld({ p: 1, clock, serve: () => false, leadBound: true });
  try {
    const w = await t.work("b3");
    clock.t = w.signedEnd - 5 * MIN;
    const handled = await t.announce(w);
    assert.equal(handled.recorded, false);
    assert.equal(handled.refusal, RECEIPT_FROM_FUTURE);
    assert.equal(handled.challenged, false);
    await t.closeWindow();
    assert.equal(t.fetches(), 0);
    assert.equal(await t.record(w.id), undefined);
    assert.deepEqual(await t.account(t.worker.publicKey), FREE);
  } finally {
    await t.close();
  }
});

Deno.test("a receipt signed up to the skew ahead of the ledger's clock is still recorded and paid", async () => {
  const clock = { t: 0 };
  const t = await liarWorld({ p: 0, clock, leadBound: true });
  try {
    const w = await t.work("ahead");
    clock.t = w.signedEnd - CLOCK_SKEW_MS;
    const handled = await t.announce(w);
    assert.equal(handled.recorded, true);
    const credit = (await t.record(w.id))!.credit;
    assert.ok(credit > 0);
    await t.closeWindow();
    assert.deepEqual(await t.account(t.worker.publicKey), { ...FREE, balance: credit });
  } finally {
    await t.close();
  }
});

/**
 * B6: L's clock is `behind` real time; a peer replays the receipt `replayAfter` real ms after the
 * worker signed it; a staked liar claims "proof withheld" 30 s before L's window closes. The
 * worker serves while real time is inside its retention (`serves`: false for a worker that
 * withholds everything).
 */
async function claimAtWindowEnd(behind: number, replayAfter: number, serves = true) {
  const clock = { t: 0 };
  let signedEnd = 0;
  const t = await liarWorld({
    p: 0,
    liarStake: 1_000,
    clock,
    leadBound: true,
    serve: () => serves && clock.t + behind < signedEnd + DEFAULT_PROOF_RETENTION_MS,
  });
  const w = await t.work("b6");
  signedEnd = w.signedEnd;
  clock.t = signedEnd + replayAfter - behind;
  assert.equal((await t.announce(w)).recorded, true);
  const rec = (await t.record(w.id))!;
  clock.t = rec.pendingUntil - 30_000;
  await t.verdict(withheldVerdict(w.id, t.worker.publicKey, clock.t, t.liar));
  await t.drained();
  const fetches = t.fetches();
  await t.closeWindow();
  const worker = await t.account(t.worker.publicKey);
  const liar = await t.account(t.liar.publicKey);
  const record = await t.record(w.id);
  await t.close();
  return { credit: rec.credit, worker, liar, fetches, record };
}

Deno.test("a ledger 5 min slow takes a liar's 'withheld' claim over after the worker's retention: proof_expired, the worker is paid and keeps its stake (B6)", async () => {
  const r = await claimAtWindowEnd(5 * MIN, 12 * MIN);
  assert.equal(r.fetches, 1, "the takeover asked the worker");
  assert.equal(r.record?.status, "final");
  assert.deepEqual(r.worker, { ...FREE, balance: r.credit });
  assert.deepEqual(r.liar, { balance: 0, stake: 1_000, locked: 0 });
});

Deno.test("correct clock, latest accepted replay, same late claim: the honest worker serves and is paid (B6 control)", async () => {
  const r = await claimAtWindowEnd(0, STALE_RECEIPT_AGE_MS - 1_000);
  assert.equal(r.fetches, 1);
  assert.deepEqual(r.worker, { ...FREE, balance: r.credit });
});

Deno.test("a worker that withholds inside its retention is still a fault on a takeover: slashed, unpaid", async () => {
  // Correct clock; replayed at +5 min, so the claim 30 s before the window's end asks at +14.5
  // min: inside the retention by every clock the ledger allows for.
  const r = await claimAtWindowEnd(0, 5 * MIN, false);
  assert.equal(r.fetches, 1);
  assert.equal(r.record?.status, "fraud");
  assert.equal(r.worker.balance, 0);
  assert.ok(r.worker.stake < WORKER_STAKE, "slashed for withholding");
});

Deno.test("a worker that withholds from the ledger's own draw at the oldest intake is a fault: slashed, unpaid", async () => {
  const clock = { t: 0 };
  const t = await liarWorld({ p: 1, clock, serve: () => false, leadBound: true });
  try {
    const w = await t.work("own-draw");
    clock.t = w.signedEnd + STALE_RECEIPT_AGE_MS;
    const handled = await t.announce(w);
    assert.equal(handled.challenged, true);
    const result = await handled.result;
    assert.equal(result?.verdict.outcome, "invalid");
    assert.equal(result?.verdict.reason, "proof_unavailable");
    await t.drained();
    await t.closeWindow();
    const worker = await t.account(t.worker.publicKey);
    assert.equal(worker.balance, 0);
    assert.ok(worker.stake < WORKER_STAKE);
  } finally {
    await t.close();
  }
});

Deno.test("proofMayBeExpired: true only for an ask whose answer is due past the retention less twice the skew", () => {
  const end = 1_000_000;
  const last = end + MIN_PROOF_RETENTION_MS - PROOF_DEADLINE_MS - 2 * CLOCK_SKEW_MS;
  assert.equal(proofMayBeExpired(end, last), false);
  assert.equal(proofMayBeExpired(end, last + 1), true);
  // Every own draw (at intake, at most the stale age) is inside it, and so is every takeover in
  // a window opened at most 5 min after the signed end.
  assert.equal(proofMayBeExpired(end, end + STALE_RECEIPT_AGE_MS), false);
  assert.equal(
    proofMayBeExpired(end, end + 5 * MIN + DEFAULT_ECONOMICS.challengeWindowMs),
    false,
  );
});
