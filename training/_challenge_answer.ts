/**
 * The trainer's answer to a challenge, as a TrainingValidator's challenge run
 * (`_training_challenge_run.ts`) takes it: the sealed openings asked for over the trainer's
 * connection and downloaded part by part within the challenge's deadline ({@link fetchOpenings}),
 * then checked by the step check the run prepares ({@link checkedAnswer}). A refusal, silence, a
 * failed fetch or junk that cannot be the trainer's answer waits for the deadline and is checked
 * as no answer: its `opening_missing` proof holds only once the deadline has passed.
 *
 * Used by the challenge run, for its drawn challenges and its takeovers alike. Not part of the
 * public API.
 *
 * @module
 */
import { sleep } from "../actors/_common.ts";
import type { Connection } from "../protocols/connection.ts";
import { ConnectionClosedError } from "../protocols/protocol_errors.ts";
import { sha256Hex, toHex } from "../protocols/hash.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { decodeCheckedCbor } from "../protocols/cbor_guard.ts";
import { ChallengeMessage, OpeningPartMessage } from "../protocols/training_messages.ts";
import type { TrainingReceipt } from "./training_receipt.ts";
import { type TrainingChallenge, trainingChallengeId } from "./training_challenge.ts";
import type { SealedStepOpenings } from "./step_opening.ts";
import type { StepOpeningsCheck } from "./step_check.ts";

/** Past a challenge's deadline by this much before "no answer" is claimed (clock rounding). */
const DEADLINE_MARGIN_MS = 50;

/**
 * New connections a challenge is asked again on after the one it was asked on is lost. A
 * connection cut for idleness (5 s, `network.idleTimeoutMs`) while the trainer answered turned
 * into `opening_missing` and a slash, though the trainer joined again seconds later (review s75
 * vtrain F1): a lost connection says nothing about the trainer's answer. The deadline bounds the
 * asks anyway; this bounds a link that keeps flapping, each new connection costing a dial.
 */
export const CHALLENGE_ASKS_ON_NEW_CONNECTION = 3;

/**
 * The trainer's answer to `challenge`, checked by the check `prepare` gives (its model loaded
 * only after the fetch: a takeover may open at the window's very end, and the trainer's
 * retention leaves it only the deadline). A refusal, silence or a failed fetch waits for the
 * deadline and is checked as no answer; so is an answer that is not the trainer's signed answer
 * when it came over the trainer's own connection, or one it signed that opens nothing. A
 * connection lost during the ask is not an answer: the challenge is asked again on the connection
 * `reconnect` gives (the trainer's new one), within the deadline.
 * @param log Where one line per missing or junk answer goes.
 * @param reconnect The trainer's connection now, after `lost` went (undefined: none came up).
 */
export async function checkedAnswer(
  receipt: TrainingReceipt,
  connection: Connection,
  challenge: TrainingChallenge,
  ctx: { signal: AbortSignal },
  prepare: () => Promise<(answer: SealedStepOpenings | undefined) => Promise<StepOpeningsCheck>>,
  log: (line: string) => void,
  reconnect?: (lost: Connection) => Promise<Connection | undefined>,
): Promise<StepOpeningsCheck> {
  const trainer = toHex(receipt.trainer).slice(0, 16);
  let sealed: SealedStepOpenings | undefined;
  let asked = connection;
  for (let asks = 0;; asks++) {
    try {
      sealed = await fetchOpenings(asked, challenge, ctx.signal);
      break;
    } catch (error) {
      const why = (error as { code?: string }).code ?? (error as Error).message;
      // The connection went (cut for idleness, the peer restarting): not the trainer's answer.
      // Asked again on the trainer's new connection while the deadline allows.
      const again = error instanceof ConnectionClosedError && reconnect !== undefined &&
          asks < CHALLENGE_ASKS_ON_NEW_CONNECTION && Date.now() < challenge.deadline &&
          !ctx.signal.aborted
        ? await reconnect(asked)
        : undefined;
      if (again !== undefined && again !== asked) {
        log(
          `training validator: connection to trainer ${trainer} lost during its challenge ` +
            `(${why}); asking again on its new connection`,
        );
        asked = again;
        continue;
      }
      // Refused, silent, or gone: the opening is missing. Its proof (the signed challenge with
      // no answer) holds only once the challenge's deadline has passed: wait for it.
      log(`training validator: trainer ${trainer} did not open its steps (${why})`);
      sealed = undefined;
      await sleep(challenge.deadline - Date.now() + DEADLINE_MARGIN_MS, ctx.signal);
      break;
    }
  }
  const checkAnswer = await prepare();
  const check = await checkAnswer(sealed);
  const ownConnection = bytesEqual(asked.peerKey ?? new Uint8Array(0), receipt.trainer);
  if (
    check.ok ||
    !(check.reason === "opening_unopenable" ||
      (check.reason === "opening_unsigned" && ownConnection))
  ) return check;
  // An answer that is not the trainer's signed answer is "someone else's": ignored, keep
  // waiting. But one that came over the trainer's own authenticated connection (it answers
  // each part request once: nothing else will come), or one the trainer signed that opens
  // nothing, is no answer: past the deadline, with its `opening_missing` proof. A proof
  // issued before the deadline would be refuted by every checker, and a lazy trainer
  // cannot send junk for free.
  // Why it cannot be opened, where the check says (one larger than an answer can be).
  const why = check.detail === undefined ? "" : ` (${check.detail})`;
  log(
    `training validator: trainer ${trainer} answered with an opening that is ${
      check.reason === "opening_unsigned" ? "unsigned" : "signed but cannot be opened"
    }${why}; waiting for the deadline`,
  );
  await sleep(challenge.deadline - Date.now() + DEADLINE_MARGIN_MS, ctx.signal);
  return await checkAnswer(undefined);
}

/**
 * Ask the trainer to answer `challenge` and download the sealed answer part by part, within
 * the challenge's deadline. Throws when the trainer refuses, goes, or runs past the deadline,
 * or when what arrives is not what it announced.
 */
async function fetchOpenings(
  connection: Connection,
  challenge: TrainingChallenge,
  signal: AbortSignal,
): Promise<SealedStepOpenings> {
  const left = () => Math.max(1, challenge.deadline - Date.now());
  const header = await connection.request(ChallengeMessage, { challenge }, {
    timeoutMs: left(),
    signal,
  });
  const challengeId = trainingChallengeId(challenge);
  const bytes = new Uint8Array(header.size);
  let at = 0;
  for (let index = 0; index < header.parts; index++) {
    const part = await connection.request(OpeningPartMessage, { challengeId, index }, {
      timeoutMs: left(),
      signal,
    });
    if (at + part.bytes.length > bytes.length) throw new Error("answer longer than announced");
    bytes.set(part.bytes, at);
    at += part.bytes.length;
  }
  if (at !== bytes.length || sha256Hex(bytes) !== header.sha256) {
    throw new Error("answer does not match its announced hash");
  }
  // Parsed by the check itself: a malformed answer is one that cannot be opened. The trainer
  // wrote these bytes: no cbor-x extension may turn them into more than they hold.
  return decodeCheckedCbor(bytes) as SealedStepOpenings;
}
