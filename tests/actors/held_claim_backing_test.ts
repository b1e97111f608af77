/**
 * The held claims' memory (`actors/_validator_memory.ts`): each claim held reserves one
 * false-accusation penalty of its author's free stake, a claim its author's stake does not cover
 * goes first when the space is full, then one about a receipt unknown here, within a class the
 * newest of the claimant holding the most, among equals the one ranked first (without a rank the
 * newest), and a claim past its age is forgotten, its reservation with it (review s76, gossip F1
 * and vroute F1; stop 77; through the ValidatorActor: `held_claim_flood_test.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type ClaimBacking,
  MAX_HELD_CLAIM_AGE_MS,
  MAX_HELD_CLAIMS,
  MAX_HELD_CLAIMS_PER_CLAIMANT,
  ValidatorMemory,
} from "../../actors/_validator_memory.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import type { ReceiptMessage } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { START, withheldVerdict } from "./_validator_fixture.ts";

const PEER = "ee".repeat(32);
const worker = Identity.generate();

/** A made-up receipt id (64 hex digits). */
function madeUpId(): string {
  return crypto.randomUUID().replaceAll("-", "").padEnd(64, "0");
}

/** Backing for the memory's own tests: `covers` per claimant key, at `now`. */
function backing(covers: Map<string, number>, now = START): ClaimBacking {
  return {
    covers: (key) => covers.get(key) ?? 0,
    now,
    maxAgeMs: MAX_HELD_CLAIM_AGE_MS,
  };
}

Deno.test("a claim its author's stake does not cover goes before any covered one, whenever it came; taken, a claim releases what it reserved", () => {
  const memory = new ValidatorMemory();
  const x = Identity.generate();
  const covers = new Map([[toHex(x.publicKey), 1]]);
  const others = Array.from({ length: MAX_HELD_CLAIMS - 2 }, () => Identity.generate());
  for (const k of others) covers.set(toHex(k.publicKey), 1);
  const a = withheldVerdict(madeUpId(), worker.publicKey, START, x);
  const b = withheldVerdict(madeUpId(), worker.publicKey, START, x);
  memory.holdClaim(a, PEER, backing(covers)); // x's stake covers this one
  memory.holdClaim(b, PEER, backing(covers)); // and not this one
  for (const k of others) {
    memory.holdClaim(
      withheldVerdict(madeUpId(), worker.publicKey, START, k),
      PEER,
      backing(covers),
    );
  }
  assert.equal(memory.heldClaims().length, MAX_HELD_CLAIMS);
  // Full: a covered newcomer pushes out x's uncovered claim, older than it.
  const y = Identity.generate();
  covers.set(toHex(y.publicKey), 1);
  const c = withheldVerdict(madeUpId(), worker.publicKey, START, y);
  memory.holdClaim(c, PEER, backing(covers));
  assert.equal(memory.takeHeldClaims(b.subjectId).length, 0, "the uncovered claim went");
  // Taken (its receipt came), x's covered claim releases its reservation: x's next is covered,
  // and a newcomer of the same class is the one dropped, not it.
  assert.equal(memory.takeHeldClaims(a.subjectId).length, 1);
  const d = withheldVerdict(madeUpId(), worker.publicKey, START, x);
  memory.holdClaim(d, PEER, backing(covers));
  const z = Identity.generate();
  covers.set(toHex(z.publicKey), 1);
  const e = withheldVerdict(madeUpId(), worker.publicKey, START, z);
  memory.holdClaim(e, PEER, backing(covers));
  assert.equal(memory.heldClaims().length, MAX_HELD_CLAIMS);
  assert.equal(memory.takeHeldClaims(d.subjectId).length, 1, "x's claim, covered again, is kept");
  assert.equal(memory.takeHeldClaims(e.subjectId).length, 0, "the newest of equals went");
  assert.equal(memory.takeHeldClaims(c.subjectId).length, 1);
});

Deno.test("a held claim expires: past its age it is forgotten at the next claim held, and its place and reservation are free", () => {
  const memory = new ValidatorMemory();
  const covers = new Map<string, number>();
  const keys = Array.from({ length: MAX_HELD_CLAIMS }, () => Identity.generate());
  for (const k of keys) covers.set(toHex(k.publicKey), 1);
  const stale = withheldVerdict(madeUpId(), worker.publicKey, START, keys[0]);
  memory.holdClaim(stale, PEER, backing(covers, START));
  for (const k of keys.slice(1)) {
    memory.holdClaim(
      withheldVerdict(madeUpId(), worker.publicKey, START, k),
      PEER,
      backing(covers, START + 1),
    );
  }
  assert.equal(memory.heldClaims().length, MAX_HELD_CLAIMS);
  // Within its age the space is full and the newest of equals goes.
  const late = Identity.generate();
  covers.set(toHex(late.publicKey), 1);
  const early = withheldVerdict(madeUpId(), worker.publicKey, START, late);
  memory.holdClaim(early, PEER, backing(covers, START + MAX_HELD_CLAIM_AGE_MS));
  assert.equal(memory.takeHeldClaims(early.subjectId).length, 0);
  // Past the first claim's age, it is forgotten and the newcomer has its place.
  const newer = withheldVerdict(madeUpId(), worker.publicKey, START, late);
  memory.holdClaim(newer, PEER, backing(covers, START + MAX_HELD_CLAIM_AGE_MS + 1));
  assert.equal(memory.takeHeldClaims(stale.subjectId).length, 0, "the stale claim expired");
  assert.equal(memory.takeHeldClaims(newer.subjectId).length, 1, "the newcomer was held");
});

Deno.test("among claims of one class the claimant holding the most goes first, its newest: 16 keys' 16 claims each, held first, do not push out a newcomer's one claim, covered or not", () => {
  // Review s76 vroute (F1): pledges are self-declared, so 16 keys pledging 16 penalties each
  // covered 256 claims, and with the newest of equals dropped the honest claim held last went.
  for (const cover of [MAX_HELD_CLAIMS_PER_CLAIMANT, 0]) {
    const memory = new ValidatorMemory();
    const covers = new Map<string, number>();
    const keys = Array.from(
      { length: MAX_HELD_CLAIMS / MAX_HELD_CLAIMS_PER_CLAIMANT },
      () => Identity.generate(),
    );
    const flood: Verdict[][] = keys.map((k) => {
      covers.set(toHex(k.publicKey), cover);
      return Array.from({ length: MAX_HELD_CLAIMS_PER_CLAIMANT }, () => {
        const claim = withheldVerdict(madeUpId(), worker.publicKey, START, k);
        memory.holdClaim(claim, PEER, backing(covers));
        return claim;
      });
    });
    assert.equal(memory.heldClaims().length, MAX_HELD_CLAIMS);
    const honest = Identity.generate();
    covers.set(toHex(honest.publicKey), cover);
    const claim = withheldVerdict(madeUpId(), worker.publicKey, START, honest);
    memory.holdClaim(claim, PEER, backing(covers));
    assert.equal(memory.heldClaims().length, MAX_HELD_CLAIMS);
    assert.equal(memory.takeHeldClaims(claim.subjectId).length, 1, `cover ${cover}: kept`);
    // Every flooder held 16, so the newest of theirs went: the last key's last claim.
    const last = flood.at(-1)!;
    assert.equal(memory.takeHeldClaims(last.at(-1)!.subjectId).length, 0, "the newest went");
    assert.equal(memory.takeHeldClaims(last.at(-2)!.subjectId).length, 1);
    assert.equal(memory.takeHeldClaims(flood[0].at(-1)!.subjectId).length, 1);
  }
});

Deno.test("a claim its author's stake does not cover still goes first, whoever holds the most: a staked key's 16 covered claims stay and a 1-unit key's one claim goes", () => {
  const memory = new ValidatorMemory();
  const covers = new Map<string, number>();
  const staked = Identity.generate();
  covers.set(toHex(staked.publicKey), MAX_HELD_CLAIMS_PER_CLAIMANT);
  const others = Array.from(
    { length: MAX_HELD_CLAIMS - MAX_HELD_CLAIMS_PER_CLAIMANT },
    () => Identity.generate(),
  );
  for (const k of others) covers.set(toHex(k.publicKey), 1);
  const stakedClaims = Array.from({ length: MAX_HELD_CLAIMS_PER_CLAIMANT }, () => {
    const claim = withheldVerdict(madeUpId(), worker.publicKey, START, staked);
    memory.holdClaim(claim, PEER, backing(covers));
    return claim;
  });
  for (const k of others) {
    memory.holdClaim(
      withheldVerdict(madeUpId(), worker.publicKey, START, k),
      PEER,
      backing(covers),
    );
  }
  const unit = Identity.generate(); // no cover: a 1-unit pledge
  const uncovered = withheldVerdict(madeUpId(), worker.publicKey, START, unit);
  memory.holdClaim(uncovered, PEER, backing(covers));
  assert.equal(memory.takeHeldClaims(uncovered.subjectId).length, 0, "the uncovered claim went");
  for (const claim of stakedClaims) {
    assert.equal(memory.takeHeldClaims(claim.subjectId).length, 1);
  }
});

Deno.test("a claim about a receipt recorded here stays before claims as backed about receipts nobody here has seen, held before or after it", () => {
  // Stop 77 (G1): a made-up receipt id costs its claimant nothing; a receipt recorded here was
  // signed by its worker and is backed by its stake. Both claims below are uncovered (their
  // authors have no pledge here).
  for (const first of [true, false]) {
    const memory = new ValidatorMemory();
    const real = madeUpId();
    const b: ClaimBacking = { ...backing(new Map()), recorded: (id) => id === real };
    const honest = withheldVerdict(real, worker.publicKey, START, Identity.generate());
    const flood = () => {
      for (let i = 0; i < MAX_HELD_CLAIMS; i++) {
        memory.holdClaim(
          withheldVerdict(madeUpId(), worker.publicKey, START, Identity.generate()),
          PEER,
          b,
        );
      }
    };
    if (first) flood();
    memory.holdClaim(honest, PEER, b);
    if (!first) flood();
    assert.equal(memory.heldClaims().length, MAX_HELD_CLAIMS);
    const kept = memory.takeHeldClaims(real).length;
    assert.equal(kept, 1, `flood ${first ? "before" : "after"}: kept`);
  }
});

/**
 * 256 claims from fresh keys about `subjects` (in turn), before or after an honest claim about a
 * receipt nobody here has seen, with a rank that puts the honest claimant lowest: whether the
 * honest claim is kept, for the flood `first` and after.
 */
function honestKeptAgainst(
  subjects: string[],
  setUp: (memory: ValidatorMemory) => void,
  recorded: (id: string) => boolean,
): boolean[] {
  return [true, false].map((first) => {
    const memory = new ValidatorMemory();
    setUp(memory);
    const claimant = Identity.generate();
    const lowest = toHex(claimant.publicKey);
    // Any order the flood's keys take among themselves; the honest claimant ranks below them all.
    const b: ClaimBacking = {
      ...backing(new Map()),
      recorded,
      rank: (c) => (c === lowest ? "0" : `1${c}`),
    };
    const honestId = madeUpId();
    const flood = () => {
      for (let i = 0; i < MAX_HELD_CLAIMS; i++) {
        const subject = subjects[i % subjects.length];
        memory.holdClaim(
          withheldVerdict(subject, worker.publicKey, START, Identity.generate()),
          PEER,
          b,
        );
      }
    };
    if (first) flood();
    memory.holdClaim(withheldVerdict(honestId, worker.publicKey, START, claimant), PEER, b);
    if (!first) flood();
    assert.equal(memory.heldClaims().length, MAX_HELD_CLAIMS);
    return memory.takeHeldClaims(honestId).length === 1;
  });
}

Deno.test("a receipt waiting for its worker's pledge does not make a claim about it known: 256 claims about such receipts give way by the rank, before or after the honest claim", () => {
  // Review s77 F1: they counted as known, and any key can have a signed receipt of an unpledged
  // key kept for its pledge, so the flood outranked the honest claim whatever its rank.
  const waiting = Array.from({ length: 16 }, () => madeUpId());
  const setUp = (memory: ValidatorMemory) => {
    const message = { type: "receipt", origin: PEER } as unknown as ReceiptMessage;
    for (const id of waiting) assert.ok(memory.awaitStake(toHex(worker.publicKey), id, message));
  };
  assert.deepEqual(honestKeptAgainst(waiting, setUp, () => false), [true, true]);
});

Deno.test("of many claims about one receipt recorded here only one counts as known: 256 keys claiming about it give way by the rank, before or after the honest claim", () => {
  // Review s77 F1: each counted, so a flood about one receipt outranked the honest claim.
  const real = madeUpId();
  assert.deepEqual(honestKeptAgainst([real], () => {}, (id) => id === real), [true, true]);
});

Deno.test("among claimants holding as many claims of one class, the one the rank puts highest goes, whichever came first", () => {
  // Stop 77 (G1): the newest of equals went, so claims that filled the space first pushed out an
  // honest newcomer; the rank is one no peer can compute (`actors/_held_claim_rank.ts`).
  const keys = Array.from({ length: MAX_HELD_CLAIMS + 1 }, () => Identity.generate());
  const hex = keys.map((k) => toHex(k.publicKey));
  const rank = new Map(hex.map((h, i) => [h, `${(i * 7919) % 1000}`.padStart(4, "0")]));
  const top = hex.reduce((a, b) => (rank.get(a)! > rank.get(b)! ? a : b));
  for (const reverse of [false, true]) {
    const memory = new ValidatorMemory();
    const b: ClaimBacking = { ...backing(new Map()), rank: (c) => rank.get(c)! };
    const claims = keys.map((k) => withheldVerdict(madeUpId(), worker.publicKey, START, k));
    for (const claim of reverse ? [...claims].reverse() : claims) memory.holdClaim(claim, PEER, b);
    const gone = claims.filter((c) => memory.takeHeldClaims(c.subjectId).length === 0);
    assert.deepEqual(gone.map((c) => toHex(c.validator)), [top], reverse ? "reversed" : "in order");
  }
});
