/**
 * Test fixture: a signed round outcome this node cannot check — a made-up later round from a
 * start model never seen here, its one receipt a signed placeholder — for tests that need an
 * outcome which passes every check before the outer step (a flood of them, an audit spent).
 *
 * @module
 */
import { cidOf } from "../../protocols/cid.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Identity } from "../../protocols/identity.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { placeholderReceipt } from "./_placeholder_receipt.ts";

/**
 * Outcome `n` (distinct for each `n`) of round 5 from a start model this node never saw, signed by
 * `coordinator`: its receipt is signed, so it passes every check before the outer step, and it
 * cannot be checked here.
 */
export function uncheckableOutcome(n: number, coordinator: Identity): OutcomeBody {
  const start = cidOf(new TextEncoder().encode(`a start model never seen ${n}`));
  const receipt = placeholderReceipt(5, start);
  return signOutcome({
    round: 5,
    startModel: start,
    model: cidOf(new TextEncoder().encode(`model ${n}`)),
    file: cidOf(new TextEncoder().encode(`model file ${n}`)),
    arch: TEST_ARCH,
    accepted: [toHex(receipt.trainer)],
    reports: [{ receipt, deltaFile: cidOf(new TextEncoder().encode(`delta ${n}`)) }],
    excluded: [],
  }, coordinator);
}
