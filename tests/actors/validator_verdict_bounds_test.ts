/**
 * What a peer's verdict may cost a ledger. A verdict is recorded for good (append-only log)
 * and passed on to every ledger peer, and stake is self-pledged: so its `details` are bounded
 * in the one schema (`MAX_VERDICT_DETAILS_BYTES`), and a verdict about a receipt that is no
 * longer open here (final, or past its window: it can change nothing) is neither recorded nor
 * passed on. Asserted on the ledger: its log does not grow, and the worker is paid as before.
 *
 * It used to be recorded and passed on whatever it carried: 45 MB of padded verdicts from
 * freshly pledged keys grew each ledger of the network by about 93 MB.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { VerdictAnnouncementMessage } from "../../protocols/inference_messages.ts";
import {
  MAX_VERDICT_DETAILS_BYTES,
  signVerdict,
  verdictId,
  verifyVerdict,
} from "../../protocols/verdict.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { failedChallenge } from "../../actors/_run_challenge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { f, STAKE, startValidator } from "./_peer_verdict_fixture.ts";

/** Details of exactly `bytes` bytes of canonical CBOR: `{ note: "x…x" }`. */
function detailsOf(bytes: number): Record<string, string> {
  // A map of one entry (1 byte), the key "note" (5), the string's head (3 bytes up to 65535).
  const details = { note: "x".repeat(bytes - 9) };
  assert.equal(encodeCanonical(details).length, bytes);
  return details;
}

Deno.test("verdict details are bounded in the schema: at the bound a verdict verifies, one byte over it is refused, on the wire too", () => {
  const by = Identity.generate();
  const signed = (details: Record<string, string>) =>
    signVerdict({
      v: 1,
      subject: "storage",
      subjectId: "audit-1",
      target: new Uint8Array(32),
      outcome: "valid",
      reason: "ok",
      details,
      issuedAt: 1,
    }, by);
  assert.equal(verifyVerdict(signed(detailsOf(MAX_VERDICT_DETAILS_BYTES))), true);
  const over = signed(detailsOf(MAX_VERDICT_DETAILS_BYTES + 1));
  assert.equal(verifyVerdict(over), false);
  assert.equal(verifyVerdict(signed({ note: "x".repeat(900_000) })), false);
  assert.equal(VerdictAnnouncementMessage.schema.safeParse({ verdict: over }).success, false);
});

Deno.test("padded verdicts from freshly staked keys are neither recorded nor passed on; honest verdicts of the largest kinds still are, and the worker is paid", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const proved = await t.prove(worker);
    assert.equal((await t.announce(proved)).recorded, true);
    const credit = (await t.record(proved.id))!.credit;
    assert.ok(credit > 0);
    // Keys pledged for nothing, each padding one verdict to most of a frame.
    const keys = [await t.staked(), await t.staked(), await t.staked()];
    const judges = [await t.staked(), await t.staked()];
    const before = await t.logBytes();
    for (const key of keys) {
      const padded = t.verdict(proved, key, "valid", "ok", { note: "x".repeat(900_000) });
      assert.equal(await t.tell(padded), undefined, "a padded verdict is refused");
    }
    assert.equal(await t.logBytes(), before, "the ledger did not grow");
    assert.equal(t.published().length, 0, "nothing was passed on");
    assert.equal((await t.stats()).refusedVerdicts, 3);

    // The largest honest verdicts: a failed takeover's 200-character message, in characters
    // of 3 UTF-8 bytes each, and a full validation's figures.
    const failed = failedChallenge(proved.receipt, "€".repeat(300), judges[0], true).verdict;
    const detailBytes = encodeCanonical(failed.details).length;
    assert.ok(detailBytes > 600 && detailBytes <= MAX_VERDICT_DETAILS_BYTES, `${detailBytes}`);
    const validated = (await validateReceipt(
      { job: proved.job, receipt: proved.receipt, proof: proved.proof },
      f.honest,
      judges[1],
    )).verdict;
    assert.equal(validated.outcome, "valid");
    for (const honest of [failed, validated]) {
      assert.equal(await t.tell(honest), verdictId(honest), "recorded");
    }
    assert.deepEqual(t.published().map(verdictId), [failed, validated].map(verdictId));
    const grown = (await t.logBytes()) - before;
    assert.ok(grown > 0 && grown < 8 * MAX_VERDICT_DETAILS_BYTES, `grew ${grown} bytes`);

    await t.closeWindow();
    assert.equal((await t.record(proved.id))!.status, "final");
    assert.deepEqual(await t.account(worker.publicKey), {
      balance: credit,
      stake: STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("a peer's verdict about a receipt past its window here, or final, is neither recorded nor passed on", async () => {
  const t = await startValidator({ p: 0, model: false });
  try {
    const worker = await t.staked();
    const first = await t.prove(worker);
    await t.announce(first);
    const second = await t.prove(worker);
    await t.announce(second);
    const credit = (await t.record(first.id))!.credit;
    const judge = await t.staked();
    // Past the window, not finalized yet (the finalize timer comes every 10 s): it can change
    // nothing any more, so a claim about it neither grows the ledger nor opens a takeover.
    t.clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    assert.equal((await t.record(first.id))!.status, "pending");
    let before = await t.logBytes();
    assert.equal(await t.claimWithheld(first, judge), undefined);
    assert.equal(await t.logBytes(), before, "the ledger did not grow");
    await t.validator.ask({ type: "finalize" });
    assert.equal((await t.record(second.id))!.status, "final");
    before = await t.logBytes();
    assert.equal(await t.tell(t.verdict(second, judge, "valid", "ok")), undefined);
    assert.equal(await t.logBytes(), before, "the ledger did not grow");
    assert.equal(t.published().length, 0, "nothing was passed on");
    assert.equal((await t.stats()).challenged, 0, "no takeover");
    assert.equal((await t.stats()).refusedVerdicts, 2);
    assert.equal((await t.record(first.id))!.status, "final");
    assert.equal((await t.account(worker.publicKey)).balance, 2 * credit, "both are paid");
  } finally {
    await t.close();
  }
});
