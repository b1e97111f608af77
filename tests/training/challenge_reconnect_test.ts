/**
 * A challenge whose connection is lost while the trainer answers is asked again on the trainer's
 * new connection, within the challenge's deadline (review s75 vtrain F1): the coordinator's node
 * cut an honest trainer for 5 s of idleness during its challenge, the trainer joined again seconds
 * later, and the challenge still became `opening_missing` and a 40000 slash. A refusal is still no
 * answer, and is not asked again.
 */
import assert from "node:assert/strict";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { PeerTimeoutError } from "../../protocols/protocol_errors.ts";
import { checkedAnswer } from "../../training/_challenge_answer.ts";
import type { StepOpeningsCheck } from "../../training/step_check.ts";
import type { TrainingChallenge } from "../../training/training_challenge.ts";
import type { TrainingReceipt } from "../../training/training_receipt.ts";
import { answeringConnection } from "./_lost_open_answer.ts";
import { join } from "node:path";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { RoundModels } from "../../training/round_models.ts";
import { bareChallengeRun, start, toldProofs, trainedEngine, trainerLink } from "./_claim_node.ts";
import { TEST_ARCH } from "./_fixtures.ts";

/**
 * The challenge's deadline from now: far past the test's own run, so the re-ask is never cut by
 * it; an unfixed run waits it out and fails then.
 */
const DEADLINE_MS = 30_000;

const trainerKey = Identity.generate().publicKey;
const receipt = { trainer: trainerKey } as unknown as TrainingReceipt;

function challenge(deadlineMs: number): TrainingChallenge {
  return {
    v: 1,
    receiptId: "00".repeat(32),
    trainer: trainerKey,
    steps: [0],
    nonce: "11".repeat(16),
    deadline: Date.now() + deadlineMs,
    issuedAt: Date.now(),
    validator: Identity.generate().publicKey,
    sig: new Uint8Array(64),
  };
}

/** A connection whose every ask fails with `error`; how many asks it got. */
function failingConnection(error: Error): { connection: Connection; asks: () => number } {
  let asks = 0;
  const connection = {
    peerKey: trainerKey,
    request: () => {
      asks++;
      return Promise.reject(error);
    },
  } as unknown as Connection;
  return { connection, asks: () => asks };
}

/** The check: any answer passes, none is `opening_missing` (the step check is not under test). */
const prepare = () =>
  Promise.resolve((answer: unknown): Promise<StepOpeningsCheck> =>
    Promise.resolve(
      answer === undefined ? { ok: false, reason: "opening_missing" } : { ok: true },
    )
  );

Deno.test("a challenge whose connection is lost (peer_timeout) is asked again on the trainer's new connection, and passes", async () => {
  const lost = failingConnection(new PeerTimeoutError("nothing received for 5000 ms"));
  const fresh = answeringConnection();
  const reconnects: Connection[] = [];
  const lines: string[] = [];
  const check = await checkedAnswer(
    receipt,
    lost.connection,
    challenge(DEADLINE_MS),
    { signal: new AbortController().signal },
    prepare,
    (line) => void lines.push(line),
    (gone) => {
      reconnects.push(gone);
      return Promise.resolve(fresh);
    },
  );
  assert.deepEqual(check, { ok: true }, lines.join("\n"));
  assert.equal(lost.asks(), 1);
  assert.deepEqual(reconnects, [lost.connection], "asked for the trainer's connection once");
  assert.ok(lines.some((l) => /lost during its challenge \(peer_timeout\); asking again/.test(l)));
  assert.ok(!lines.some((l) => l.includes("did not open its steps")), lines.join("\n"));
});

Deno.test("a challenge the trainer refuses is not asked again: its opening is missing", async () => {
  const refused = failingConnection(
    Object.assign(new Error("refused"), { code: "challenge_refused" }),
  );
  let reconnects = 0;
  const lines: string[] = [];
  // A short deadline: a refusal waits it out before the check says "missing".
  const check = await checkedAnswer(
    receipt,
    refused.connection,
    challenge(100),
    { signal: new AbortController().signal },
    prepare,
    (line) => void lines.push(line),
    () => {
      reconnects++;
      return Promise.resolve(answeringConnection());
    },
  );
  assert.deepEqual(check, { ok: false, reason: "opening_missing" });
  assert.equal(reconnects, 0, "a refusal is the trainer's answer");
  assert.ok(lines.some((l) => l.includes("did not open its steps (challenge_refused)")));
});

Deno.test("a lost connection with no new one from the trainer is an opening missing", async () => {
  const lost = failingConnection(new PeerTimeoutError("nothing received for 5000 ms"));
  const lines: string[] = [];
  const check = await checkedAnswer(
    receipt,
    lost.connection,
    challenge(100),
    { signal: new AbortController().signal },
    prepare,
    (line) => void lines.push(line),
    () => Promise.resolve(undefined),
  );
  assert.deepEqual(check, { ok: false, reason: "opening_missing" });
  assert.ok(lines.some((l) => l.includes("did not open its steps (peer_timeout)")));
});

Deno.test("an honest trainer whose connection is lost during its challenge, and which is connected again, is asked there and not slashed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-challenge-reconnect-" });
  try {
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const model = await models.publish(TEST_ARCH, start);
    const { identity, engine, receipts: [{ receipt, delta }] } = await trainedEngine(model.cid, 1);
    // The connection the challenge goes out on is cut for idleness; the trainer's next one (it
    // joined again) answers as the honest trainer does.
    const cut = failingConnection(new PeerTimeoutError("nothing received for 5000 ms"));
    const rejoined = trainerLink(identity, (c) => engine.open(c));
    let links = 0;
    const { run, ctx, told } = bareChallengeRun({
      models,
      openingDeadlineMs: DEADLINE_MS,
      connectionTo: () => Promise.resolve(links++ === 0 ? cut.connection : rejoined.connection),
      reach: () => Promise.resolve(undefined),
    });
    const body = {
      round: 0,
      startModel: model.cid,
      arch: TEST_ARCH,
      reports: [{ receipt, deltaFile: "unused" }],
    } as unknown as OutcomeBody;
    await run.afterRound(body, body.reports[0], delta, ctx);
    assert.equal(cut.asks(), 1, "asked on the connection that was cut");
    assert.equal(rejoined.challenges.length, 1, "asked again on the trainer's new connection");
    assert.deepEqual(toldProofs(told), [], "no fraud proof: not slashed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
