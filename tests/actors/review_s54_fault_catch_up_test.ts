/**
 * Review s54 of who hears that a worker withheld its proof data (`ValidatorActor`'s challenge
 * ending). A "proof withheld" fault cannot be proven to a third party: its signed verdict is a
 * claim other ledgers take over on (`withheld_check.ts`), asking the worker themselves. It
 * reached only the peers connected when it was gossiped: a ledger offline then, or one that
 * joined later and recorded the receipt through others, never heard it, never asked, and paid
 * the worker that withheld — though the same verdict, had a failed ledger write delayed it to
 * the next start, was kept for the catch-up of every peer that connects while its window is
 * open (`_catch_up.ts`). Now a fault's verdict is kept for the catch-up whichever way it ended.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import { startValidator } from "./_peer_verdict_fixture.ts";

Deno.test("a worker that withholds its proof data is slashed, and the verdict is kept for peers that connect while its window is open", async () => {
  const t = await startValidator({ p: 1, model: true });
  try {
    const worker = await t.staked();
    const proved = await t.prove(worker);
    t.served.delete(proved.id); // withheld
    await t.announce(proved);
    await t.drained();
    assert.equal((await t.record(proved.id))?.status, "fraud");
    const items = await t.validator.ask<CatchUpItem[]>({ type: "catch_up" });
    const verdicts = items.flatMap((item) => item.kind === "verdict" ? [item.verdict] : []);
    assert.deepEqual(
      verdicts.map((v) => [v.subjectId, v.outcome, v.reason]),
      [[proved.id, "invalid", "proof_unavailable"]],
    );
  } finally {
    await t.close();
  }
});
