/**
 * Stake pledges in the ledger: every pledge kept whole across restarts, and a key that signs two
 * different pledges convicted the same way in every ledger.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge, verifyStakePledge } from "../../protocols/stake_pledge.ts";
import { Ledger, LedgerError } from "../../proof/ledger.ts";
import {
  type LedgerCheckpoint,
  readCheckpoint,
  signCheckpoint,
  writeCheckpoint,
} from "../../proof/ledger_checkpoint.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { assigned, copyDir, receipt, withLedgerDir } from "./_ledger_fixtures.ts";
import { prng } from "../_prng.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import {
  type Evidence,
  feed,
  proof,
  seeded,
  shuffled,
  signedProof,
  tick,
  WINDOW,
} from "./_convergence_world.ts";

// The ledger keeps every signed pledge it recorded, whole, so a node can pass them on to peers that
// join later; they survive a restart from a checkpoint, from genesis, and from a checkpoint written
// before pledges were kept in it.

const owner = Identity.generate();
const pledgers = [Identity.generate(), Identity.generate(), Identity.generate()];
const pledges = pledgers.map((p, i) => signStakePledge(p, 1_000 * (i + 1), 10 + i));

Deno.test("a ledger lists every signed pledge it recorded, once per key, and not deposits", () =>
  withLedgerDir(async (dir) => {
    const ledger = await Ledger.open(dir, owner);
    try {
      await ledger.deposit(Identity.generate().publicKey, 500);
      for (const pledge of pledges) assert.equal(await ledger.recordPledge(pledge), true);
      // The same pledge again is not recorded, so not listed twice either (a second, different
      // pledge convicts its key: the pledge equivocation tests below).
      assert.equal(await ledger.recordPledge(pledges[0]), false);
      const listed = ledger.pledges();
      assert.deepEqual(listed, pledges);
      assert.ok(listed.every(verifyStakePledge), "each one still verifies under its own key");
    } finally {
      await ledger.close();
    }
  }));

Deno.test("a ledger's pledges survive a restart: from its checkpoint and the entries after it, or from genesis", () =>
  withLedgerDir(async (dir) => {
    const ledger = await Ledger.open(dir, owner, { checkpointEvery: 2 });
    for (const pledge of pledges) await ledger.recordPledge(pledge);
    // A kill -9 now: the last pledge is after the last checkpoint.
    const asIs = await copyDir(dir);
    const noCheckpoint = await copyDir(dir);
    await Deno.remove(`${noCheckpoint}/checkpoint.cbor`);
    await ledger.close();
    try {
      for (const image of [asIs, noCheckpoint]) {
        const reopened = await Ledger.open(image, owner, { checkpointEvery: 2 });
        try {
          assert.deepEqual(reopened.pledges(), pledges);
        } finally {
          await reopened.close();
        }
      }
    } finally {
      await Deno.remove(asIs, { recursive: true });
      await Deno.remove(noCheckpoint, { recursive: true });
    }
  }));

Deno.test("a checkpoint written before pledges were kept in it: the ledger replays from genesis and keeps them", () =>
  withLedgerDir(async (dir) => {
    const ledger = await Ledger.open(dir, owner);
    for (const pledge of pledges) await ledger.recordPledge(pledge);
    await ledger.close(); // writes a checkpoint covering every pledge
    // The same checkpoint as an older node signed it: a state without pledges.
    const current = await readCheckpoint(dir) as LedgerCheckpoint;
    const { pledges: _kept, ...olderState } = current.state;
    assert.ok(_kept !== undefined && _kept.length === pledges.length);
    const { v: _v, signer: _signer, sig: _sig, ...unsigned } = current;
    await writeCheckpoint(dir, signCheckpoint({ ...unsigned, state: olderState }, owner));

    const reopened = await Ledger.open(dir, owner);
    try {
      assert.deepEqual(reopened.pledges(), pledges);
      assert.equal(reopened.account(pledgers[2].publicKey).stake, 3_000);
    } finally {
      await reopened.close();
    }
    const rewritten = await readCheckpoint(dir) as LedgerCheckpoint;
    assert.equal(rewritten.state.pledges?.length, pledges.length, "the next checkpoint has them");
  }));

Deno.test("ledger verify: a checkpoint written before pledges were kept still matches its log", () =>
  withLedgerDir(async (dir) => {
    const ledger = await Ledger.open(dir, owner);
    for (const pledge of pledges) await ledger.recordPledge(pledge);
    await ledger.close();
    assert.equal((await verifyLedger(dir)).checkpoint.check, "matches");
    const current = await readCheckpoint(dir) as LedgerCheckpoint;
    const { pledges: _kept, ...olderState } = current.state;
    const { v: _v, signer: _signer, sig: _sig, ...unsigned } = current;
    await writeCheckpoint(dir, signCheckpoint({ ...unsigned, state: olderState }, owner));
    const report = await verifyLedger(dir);
    assert.equal(report.checkpoint.check, "matches");
    assert.equal(report.ok, true);
    // Any other difference is still found.
    const forged = { ...olderState, accounts: [] };
    await writeCheckpoint(dir, signCheckpoint({ ...unsigned, state: forged }, owner));
    assert.equal((await verifyLedger(dir)).checkpoint.check, "does_not_match");
  }));

// A key that signs two pledges of different content: once a ledger holds both, the key is convicted
// of pledge equivocation and forfeits its stake and its balance, the same in every ledger whatever
// the order the evidence came in. Two ledgers fed the same evidence — one pledge first here, the
// other there, the key's receipts (one only the larger pledge can back), a fraud proof, and the
// second pledge before or after every window closed — end with the same accounts and the same
// statuses for the receipts both recorded; and the conviction survives a restart from genesis and
// from a checkpoint.

/** The key that pledges twice. */
const cheat = seeded(61);
/** An honest accuser. */
const v1 = seeded(62);
/** An honest worker, whose account no conviction of another key may touch. */
const w1 = seeded(63);

const low = signStakePledge(cheat, 1_000, 1);
const high = signStakePledge(cheat, 1_000_000, 2);

/** A pledge as evidence (every order hands it straight to the ledger). */
function pledged(name: string, signed: typeof low): Evidence {
  return {
    name,
    ready: () => true,
    deliver: async (ledger) => {
      await ledger.recordPledge(signed);
      return undefined;
    },
  };
}

/**
 * `r` as its requester announces it (with the assignment), once its worker has stake here; a
 * refusal (`insufficient_stake` included) is the ledger's answer.
 */
function announce(name: string, r: Receipt): Evidence {
  return {
    name,
    ready: (ledger) => ledger.hasStaked(r.worker),
    deliver: async (ledger) => {
      try {
        await ledger.recordReceipt(r, assigned(r));
        return undefined;
      } catch (error) {
        if (error instanceof LedgerError) return error.code;
        throw error;
      }
    },
  };
}

// Fits either pledge: lock 20 × 10 = 200, credit 10.
const small = receipt(6601, 10, cheat);
// Only the larger pledge backs it: lock 20 × 100 = 2,000.
const large = receipt(6602, 100, cheat);
// A cheat caught by v1's confirmed proof: lock 20 × 5 = 100, v1 earns half.
const caught = receipt(6603, 5, cheat);
const caughtProof = signedProof(caught, 6603, v1);
// Honest work of another key.
const honest = receipt(6604, 7, w1);

/** The evidence between the two pledges: the cheat's receipts, a proof, an honest receipt. */
const between: Evidence[] = [
  pledged("pledge v1", signStakePledge(v1, 1_000, 0)),
  pledged("pledge w1", signStakePledge(w1, 10_000, 0)),
  announce("small", small),
  announce("large", large),
  announce("caught", caught),
  proof("caught proof v1", caughtProof, caught, v1, true),
  announce("honest", honest),
  tick("tick"),
];

interface End {
  accounts: Record<string, { balance: number; stake: number; locked: number }>;
  statuses: Record<string, string | undefined>;
}

/** What `ledger` ends with: the parties' accounts and the receipts' statuses. */
function endOf(ledger: Ledger): End {
  const accounts: End["accounts"] = {};
  for (const [name, id] of Object.entries({ cheat, v1, w1 })) {
    accounts[name] = { ...ledger.account(id.publicKey) };
  }
  const statuses: End["statuses"] = {};
  for (const [name, r] of Object.entries({ small, caught, honest })) {
    statuses[name] = ledger.receipt(receiptId(r))?.status;
  }
  return { accounts, statuses };
}

/**
 * A fresh ledger fed `order`, then (after every window closed) `late`; its end state, checked
 * to be the same replayed from genesis and from a checkpoint.
 */
async function settle(owner: number, order: Evidence[], late: Evidence[] = []): Promise<End> {
  let end: End | undefined;
  await withLedgerDir(async (dir, clock) => {
    const options = { now: () => clock.t, economics: { challengeWindowMs: WINDOW } };
    const identity = seeded(owner);
    let ledger = await Ledger.open(dir, identity, { ...options, checkpointEvery: 0 });
    await feed(ledger, clock, order);
    await feed(ledger, clock, late);
    end = endOf(ledger);
    await ledger.checkpoint();
    await ledger.close();
    ledger = await Ledger.open(dir, identity, { ...options, checkpointEvery: 0 });
    assert.deepEqual(endOf(ledger), end, "restored from the checkpoint alike");
    await ledger.close();
    await Deno.remove(`${dir}/checkpoint.cbor`);
    ledger = await Ledger.open(dir, identity, { ...options, checkpointEvery: 0 });
    assert.deepEqual(endOf(ledger), end, "replayed from genesis alike");
    await ledger.close();
    assert.equal((await verifyLedger(dir)).ok, true, "the log verifies from genesis");
  });
  return end!;
}

Deno.test("a key's two pledges: two ledgers that each heard a different one first end with the same accounts and receipt statuses, the key's stake and balance forfeited", async () => {
  const lowFirst = await settle(71, [pledged("low", low), ...between, pledged("high", high)]);
  const highFirst = await settle(72, [pledged("high", high), ...between, pledged("low", low)]);
  // The outcome, spelled out: the property is not "both equally wrong".
  assert.deepEqual(lowFirst.accounts, {
    cheat: { balance: 0, stake: 0, locked: 0 },
    // Half of the caught receipt's lock (100).
    v1: { balance: 50, stake: 1_000, locked: 0 },
    w1: { balance: 7, stake: 10_000, locked: 0 },
  });
  assert.deepEqual(lowFirst.statuses, { small: "final", caught: "fraud", honest: "final" });
  assert.deepEqual(highFirst, lowFirst);
  // The proof about a receipt recorded before the conviction, coming after it: the accuser's
  // share is the same (the lock is still there to slash).
  const proofLast = [...between.filter((e) => e.name !== "caught proof v1"), pledged("low", low)];
  proofLast.push(between.find((e) => e.name === "caught proof v1")!);
  assert.deepEqual(await settle(77, [pledged("high", high), ...proofLast]), lowFirst);
});

Deno.test("a key's two pledges, in 12 seeded orders of everything after its first: the key always ends with nothing, an honest worker untouched, and an accuser paid its share exactly when the receipt it caught was recorded", async () => {
  for (const seed of Array.from({ length: 12 }, (_, i) => 6610 + i)) {
    const [first, second] = seed % 2 === 0 ? [low, high] : [high, low];
    const order = shuffled([...between, pledged("second", second)], prng(seed));
    const end = await settle(80 + (seed % 50), [pledged("first", first), ...order]);
    const recorded = end.statuses.caught !== undefined;
    assert.deepEqual(end.accounts, {
      cheat: { balance: 0, stake: 0, locked: 0 },
      v1: { balance: recorded ? 50 : 0, stake: 1_000, locked: 0 },
      w1: { balance: 7, stake: 10_000, locked: 0 },
    }, `seed ${seed}: ${order.map((e) => e.name).join(" → ")}`);
  }
});

Deno.test("a key's two pledges: the second heard after every window closed (its receipts paid) forfeits as much as one heard first", async () => {
  const convictedFirst = await settle(73, [pledged("low", low), pledged("high", high), ...between]);
  const lowThenLate = await settle(74, [pledged("low", low), ...between], [pledged("high", high)]);
  const highThenLate = await settle(75, [pledged("high", high), ...between], [pledged("low", low)]);
  assert.deepEqual(lowThenLate.accounts, highThenLate.accounts);
  assert.deepEqual(lowThenLate.statuses, highThenLate.statuses);
  assert.deepEqual(convictedFirst.accounts.cheat, { balance: 0, stake: 0, locked: 0 });
  assert.deepEqual(lowThenLate.accounts.cheat, convictedFirst.accounts.cheat);
  assert.deepEqual(lowThenLate.accounts.w1, convictedFirst.accounts.w1);
});

Deno.test("a key convicted of pledge equivocation: both pledges are listed (a peer holding either can convict it), and no later pledge or deposit gives it stake again", () =>
  withLedgerDir(async (dir) => {
    const ledger = await Ledger.open(dir, seeded(76));
    try {
      assert.equal(await ledger.recordPledge(low), true);
      // The same pledge again is nothing new.
      assert.equal(await ledger.recordPledge(low), false);
      assert.equal(await ledger.recordPledge(high), true, "the conflicting pledge is recorded");
      assert.deepEqual(ledger.pledges(), [low, high]);
      assert.deepEqual(ledger.pledges({ key: cheat.publicKey }), [low, high]);
      assert.deepEqual(ledger.pledges({ limit: 10 }), [low, high]);
      assert.equal(ledger.pledgeEquivocated(cheat.publicKey), true);
      assert.equal(ledger.convicted(cheat.publicKey), true);
      // A third pledge adds no evidence: not recorded.
      assert.equal(await ledger.recordPledge(signStakePledge(cheat, 5_000, 3)), false);
      await ledger.deposit(cheat.publicKey, 500);
      assert.deepEqual(ledger.account(cheat.publicKey), { balance: 0, stake: 0, locked: 0 });
      const next = receipt(6605, 1, cheat);
      assert.equal(ledger.receiptRefusal(next, assigned(next)), "insufficient_stake");
    } finally {
      await ledger.close();
    }
  }));
