/**
 * The inference wire messages: every step of an inference job as a message between nodes.
 * Each type has one schema, here; handlers and requesters get the inferred body types.
 *
 * Two protocols, so a peer states what it does in the connection handshake:
 *
 * ```
 * inference (a worker serves it)
 *   inference.submit    { job, topLogprobs?, resume? } ⇒ stream of inference.event:
 *                                             { start, resumedFrom? } { token, top?, sig }…
 *                                             { end: summary + receipt }
 *   (cancel: the connection's `cancel` from the requester, its `error` from the worker)
 *   inference.list_models {}               → inference.models { models }
 *   inference.get_proof { receiptId }      → inference.proof { served: { proof, sig } | null }
 *   inference.get_receipt { jobId, held? } → inference.receipt { receipt | null, reason? }
 *
 * validation (a node that keeps a ledger serves it)
 *   validation.receipt  { receipt, job }   → validation.receipt_ack { recorded, refusal? }
 *   validation.verdict  { verdict }          one-way
 *   validation.fraud_proof { proof }         one-way
 *   validation.stream_proof { proof }        one-way
 *   validation.stake    { pledge }           one-way
 * ```
 *
 * Nothing here carries a per-message signature: the connection's handshake authenticates the
 * peer. A token event's `sig` is not one either: it signs the job's output so far, for a third
 * party (`stream_commitment.ts`). What a third party must check is signed inside the body (receipts, verdicts, fraud
 * proofs, stake pledges) and is checked by whoever acts on it, whoever relayed it.
 *
 * The `validation.receipt_ack` says only whether the receipt entered the ledger — never
 * whether it will be challenged, so a worker cannot learn its odds before it is too late.
 *
 * @module
 */
import { z } from "zod";
import {
  GENERATION_LIMITS,
  jobBytes,
  MAX_NETWORK_JOB_BYTES,
  type TextJob,
  textJobSchema,
} from "./job.ts";
import { type Receipt, ReceiptSchema } from "./receipt.ts";
import { type Verdict, VerdictSchema } from "./verdict.ts";
import { type FraudProof, FraudProofSchema } from "./fraud_proof.ts";
import { type StreamProof, StreamProofSchema } from "./stream_proof.ts";
import { type ServedProof, ServedProofSchema } from "../proof/served_proof.ts";
import { type JobAssignment, JobAssignmentSchema } from "./assignment.ts";
import { defineMessage, type MessageDefinition } from "./message_registry.ts";
import { defineProtocol, type Protocol } from "./connection_protocols.ts";
import { type StakePledge, StakePledgeSchema } from "./stake_pledge.ts";
import { SIGNATURE_BYTES } from "./identity.ts";
import { MAX_TOP_LOGPROBS } from "../inference/top_logprobs.ts";

const HEX64 = /^[0-9a-f]{64}$/;
/** Longest model name or error text carried in an event (names are for humans). */
const MAX_NAME_LENGTH = 256;
/** Longest token text: one token's newly complete UTF-8 text is a few bytes; be generous. */
const MAX_TOKEN_TEXT_LENGTH = 1024;

const modelInfoSchema = z.object({
  cid: z.string().min(1).max(128),
  name: z.string().max(MAX_NAME_LENGTH),
  kind: z.enum(["text", "tensor"]),
  contextLength: z.number().int().positive().optional(),
  executionProvider: z.string().max(32).optional(),
});

/** Timings are numbers, or NaN where nothing was measured (no first token). */
const timing = z.union([z.number(), z.nan()]);

const summarySchema = z.object({
  jobId: z.string().regex(HEX64),
  finishReason: z.enum(["stop", "length", "cancelled", "error"]),
  usage: z.object({
    promptTokens: z.number().int().nonnegative(),
    completionTokens: z.number().int().nonnegative(),
  }),
  timings: z.object({
    queueMs: timing,
    ttftMs: timing,
    totalMs: timing,
    tokensPerS: timing,
  }),
  receipt: ReceiptSchema.optional(),
  error: z.object({
    code: z.string().max(64),
    message: z.string().max(MAX_NAME_LENGTH * 4),
  }).optional(),
});

/** A model as the wire describes it (the port's `ServedModelInfo`, plain data). */
export interface WireModelInfo {
  /** The model's id (`inference/model_identity.ts`). */
  cid: string;
  /** Human-readable name. */
  name: string;
  /** Text generation or one-shot tensor model. */
  kind: "text" | "tensor";
  /** Context window in tokens. */
  contextLength?: number;
  /** The execution provider the worker runs it on. */
  executionProvider?: string;
}

/** A job's summary as the wire carries it (the port's `JobSummary`, receipt included). */
export interface WireJobSummary {
  /** The job id. */
  jobId: string;
  /** Why it ended. */
  finishReason: "stop" | "length" | "cancelled" | "error";
  /** Token counts. */
  usage: { promptTokens: number; completionTokens: number };
  /** The worker's timings, ms (NaN where nothing was measured). */
  timings: { queueMs: number; ttftMs: number; totalMs: number; tokensPerS: number };
  /** The worker's signed receipt. */
  receipt?: Receipt;
  /** What ended the job, or the prover's failure. */
  error?: { code: string; message: string };
}

/** The `start` event: the worker accepted the job. */
export interface StartEvent {
  /** Event tag. */
  kind: "start";
  /** The job id as the worker computed it. */
  jobId: string;
  /** The model that runs it. */
  model: WireModelInfo;
  /** Tokens in the prompt. */
  promptTokens: number;
  /**
   * The submission's `resume` was taken: the first token event is at this position. Absent for
   * a job from the start, and from a worker that predates resuming (which ignores `resume`).
   */
  resumedFrom?: number;
  /**
   * With `resumedFrom`: the text the worker decodes the resumed prefix's ids to (its stream
   * decoder primed with them, unflushed: a character split across the cut comes with the first
   * token after it). Its receipt signs this text followed by its tokens' own; the router compares
   * it with the text it relayed for those ids (`network/failover.ts`). Absent from a worker that
   * predates it, or whose model cannot decode here.
   */
  resumedText?: string;
}

/** One of the most likely tokens at a position, in a `token` event. */
export interface WireTopLogprob {
  /** The token id. */
  tokenId: number;
  /** Its text on its own. */
  text: string;
  /** Its log-probability under the model. */
  logprob: number;
}

/** A `token` event. */
export interface TokenEvent {
  /** Event tag. */
  kind: "token";
  /** Output position, from 0. */
  index: number;
  /** The token id. */
  tokenId: number;
  /** Newly complete text. */
  text: string;
  /** The token's log-probability under the model (`StreamedToken.logprob`), when known. */
  logprob?: number;
  /**
   * The most likely tokens at this position (`StreamedToken.topLogprobs`), when the submission
   * asked for them; at most `MAX_TOP_LOGPROBS`.
   */
  top?: WireTopLogprob[];
  /** Set on the last token. */
  finishReason?: "stop" | "length";
  /**
   * The worker's signature over the job's stream up to and including this token
   * (`protocols/stream_commitment.ts`). A requester refuses a token event without one.
   */
  sig?: Uint8Array;
}

/**
 * A `tokens` event: several consecutive tokens in one event, sent when the submission allowed
 * it (`tokensPerEvent`) and more than one was ready — a requester that keeps up still gets one
 * `token` event per token.
 */
export interface TokensEvent {
  /** Event tag. */
  kind: "tokens";
  /** Consecutive tokens, in order (2 to `MAX_TOKENS_PER_EVENT`). */
  tokens: Omit<TokenEvent, "kind" | "sig">[];
  /** The worker's signature over the job's stream up to and including the last of `tokens`. */
  sig?: Uint8Array;
}

/** The highest place a `queued` event may name: the longest queue a node allows (`queueLimit`). */
export const MAX_QUEUE_PLACE = 100_000;

/** Most tokens one `tokens` event may carry. */
export const MAX_TOKENS_PER_EVENT = 16;

/** Longest a submission may ask the worker to gather tokens into one event (`gatherMs`). */
export const MAX_GATHER_MS = 50;

/** The `end` event: the summary and the receipt. */
export interface EndEvent {
  /** Event tag. */
  kind: "end";
  /** How the job ended. */
  summary: WireJobSummary;
}

/**
 * A `queued` event: the job waits for a slot on the worker, at this place in its model's queue
 * (1: next). Sent only to a submission that asked (`queued`), between the start and the first
 * token: when the job is queued, when its place changes, and again every
 * `QUEUED_EVENT_REPEAT_MS` while it does not.
 */
export interface QueuedEvent {
  /** Event tag. */
  kind: "queued";
  /** The job's place in the queue, from 1. */
  position: number;
}

// Defined in a file the streaming client loads without this one's imports (zod).
export { QUEUED_EVENT_REPEAT_MS } from "./queued_repeat.ts";

/** One event of a job's stream: its start, its place in a queue, one token or several, or its end. */
export type InferenceEvent = StartEvent | QueuedEvent | TokenEvent | TokensEvent | EndEvent;

/** The fields of one token on the wire (a `token` event, an item of a `tokens` event). */
const tokenFields = {
  index: z.number().int().nonnegative(),
  tokenId: z.number().int().nonnegative(),
  text: z.string().max(MAX_TOKEN_TEXT_LENGTH),
  logprob: z.number().optional(),
  top: z.array(z.object({
    tokenId: z.number().int().nonnegative(),
    text: z.string().max(MAX_TOKEN_TEXT_LENGTH),
    logprob: z.number(),
  })).max(MAX_TOP_LOGPROBS).optional(),
  finishReason: z.enum(["stop", "length"]).optional(),
};

/** An event's stream signature (`protocols/stream_commitment.ts`). */
const streamSig = z.instanceof(Uint8Array).refine((b) => b.length === SIGNATURE_BYTES).optional();

/** Every `inference.event` body, as zod checks it (the whole rule; see {@link tokenEventFast}). */
const inferenceEventSchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("start"),
    jobId: z.string().regex(HEX64),
    model: modelInfoSchema,
    promptTokens: z.number().int().nonnegative(),
    resumedFrom: z.number().int().nonnegative().max(GENERATION_LIMITS.maxTokens).optional(),
    // A token's text each, at most: the prefix has at most `maxTokens` of them.
    resumedText: z.string().max(GENERATION_LIMITS.maxTokens * MAX_TOKEN_TEXT_LENGTH).optional(),
  }),
  z.object({ kind: z.literal("queued"), position: z.number().int().min(1).max(MAX_QUEUE_PLACE) }),
  z.object({ kind: z.literal("token"), ...tokenFields, sig: streamSig }),
  z.object({
    kind: z.literal("tokens"),
    tokens: z.array(z.object(tokenFields)).min(2).max(MAX_TOKENS_PER_EVENT),
    sig: streamSig,
  }),
  z.object({ kind: z.literal("end"), summary: summarySchema }),
]) as unknown as z.ZodType<InferenceEvent>;

/** The keys a token may carry that {@link tokenFast} takes itself (`top` goes to zod). */
const FAST_TOKEN_KEYS: ReadonlySet<string> = new Set([
  "index",
  "tokenId",
  "text",
  "logprob",
  "finishReason",
]);

/** A plain object, as CBOR decodes a map: no prototype but `Object.prototype`'s to read through. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" &&
    Object.getPrototypeOf(value) === Object.prototype;
}

/** The event keys of a `token` event besides its token's. */
const TOKEN_EVENT_KEYS: ReadonlySet<string> = new Set(["kind", "sig"]);

/** A stream signature as zod takes it: 64 bytes. */
function isStreamSig(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === SIGNATURE_BYTES;
}

/**
 * One token (`extra` = the other keys its object may hold: `kind` and `sig` in a `token` event)
 * as zod parses it — a fresh object with its keys in the schema's order — or undefined when this
 * is not sure zod would take it as is: any other key, an absent-but-present (`undefined`) value,
 * `top`, or a value out of range. Undefined is never a refusal: the caller asks zod then.
 */
function tokenFast(
  value: Record<string, unknown>,
  extra: ReadonlySet<string> | undefined,
): Omit<TokenEvent, "kind"> | undefined {
  for (const key in value) {
    if (!extra?.has(key) && !FAST_TOKEN_KEYS.has(key)) return undefined;
    if (value[key] === undefined) return undefined;
  }
  const { index, tokenId, text, logprob, finishReason } = value;
  if (typeof index !== "number" || !Number.isSafeInteger(index) || index < 0) return undefined;
  if (typeof tokenId !== "number" || !Number.isSafeInteger(tokenId) || tokenId < 0) {
    return undefined;
  }
  if (typeof text !== "string" || text.length > MAX_TOKEN_TEXT_LENGTH) return undefined;
  const token: Omit<TokenEvent, "kind"> = { index, tokenId, text };
  if ("logprob" in value) {
    if (typeof logprob !== "number" || !Number.isFinite(logprob)) return undefined;
    token.logprob = logprob;
  }
  if ("finishReason" in value) {
    if (finishReason !== "stop" && finishReason !== "length") return undefined;
    token.finishReason = finishReason;
  }
  if ("sig" in value) {
    if (!isStreamSig(value.sig)) return undefined;
    token.sig = value.sig;
  }
  return token;
}

/**
 * A `token` or `tokens` event (what a job's stream is made of) checked by hand, with exactly
 * the output zod gives it; undefined for anything it is not sure of, which zod then parses in
 * full. It only ever takes what zod takes, so what is refused and why stays zod's, pinned by
 * `tests/protocols/inference_event_fast_test.ts`. Why: a router parses every event it
 * relays, and in one zod took twice as long (about 35 µs a `tokens` event against 15).
 */
function tokenEventFast(input: unknown): InferenceEvent | undefined {
  if (!isPlainObject(input)) return undefined;
  if (input.kind === "token") {
    const token = tokenFast(input, TOKEN_EVENT_KEYS);
    return token && { kind: "token", ...token };
  }
  if (input.kind !== "tokens") return undefined;
  for (const key in input) {
    if (key !== "kind" && key !== "tokens" && key !== "sig") return undefined;
  }
  const sig = input.sig;
  if ("sig" in input && !isStreamSig(sig)) return undefined;
  const signed = sig as Uint8Array | undefined;
  const items = input.tokens;
  if (!Array.isArray(items) || Object.getPrototypeOf(items) !== Array.prototype) return undefined;
  if (items.length < 2 || items.length > MAX_TOKENS_PER_EVENT) return undefined;
  const tokens: Omit<TokenEvent, "kind">[] = [];
  for (const item of items) {
    const token = isPlainObject(item) ? tokenFast(item, undefined) : undefined;
    if (token === undefined) return undefined;
    tokens.push(token);
  }
  return signed === undefined
    ? { kind: "tokens", tokens }
    : { kind: "tokens", tokens, sig: signed };
}

/** A chunk of `inference.submit`'s stream. */
export const InferenceEventMessage: MessageDefinition<InferenceEvent> = defineMessage(
  "inference.event",
  {
    safeParse(input: unknown, context?: object) {
      const fast = tokenEventFast(input);
      return fast === undefined
        ? inferenceEventSchema.safeParse(input, context)
        : { success: true, data: fast };
    },
  },
);

/**
 * A text job that may cross between nodes: {@link textJobSchema} within
 * {@link MAX_NETWORK_JOB_BYTES}, so its fraud proofs can reach every ledger.
 */
const networkJobSchema = textJobSchema.refine(
  (job) => jobBytes(job) <= MAX_NETWORK_JOB_BYTES,
  `a job crossing nodes takes at most ${MAX_NETWORK_JOB_BYTES} bytes (MAX_NETWORK_JOB_BYTES)`,
);

/** Body of `inference.submit`. */
export interface SubmitBody {
  /** The job; the worker derives its id as anyone would (`jobId(job)`). */
  job: TextJob;
  /**
   * Each token event also lists this many of the most likely tokens (`top`), 0 to
   * `MAX_TOP_LOGPROBS`; absent: none. Beside the job, not in it: the job id and the receipt do
   * not depend on it.
   */
  topLogprobs?: number;
  /**
   * Resume the job after these token ids (positions `0 … k−1`), which the requester already has
   * from a worker it lost; the worker replays and commits to them and streams from position k
   * (`inference/resumed_generation.ts`). Absent: from the start. Beside the job, not in it.
   */
  resume?: number[];
  /**
   * Most tokens the requester takes in one event (a `tokens` event), 1 to
   * `MAX_TOKENS_PER_EVENT`; absent or 1: one `token` event per token, as before. The worker
   * sends several only when they are ready before the requester takes the last.
   */
  tokensPerEvent?: number;
  /**
   * With `tokensPerEvent` above 1: a token that comes within this many ms of the worker's last
   * event waits for that much to pass (or for `tokensPerEvent` tokens) and goes out with those
   * that came meanwhile — fewer, fuller events from a fast model, each token held back at most
   * this long. 0 to `MAX_GATHER_MS`; absent or 0: each token goes out as soon as it is ready,
   * as before. A worker that predates the field ignores it.
   */
  gatherMs?: number;
  /**
   * Send `queued` events while the job waits for a slot; absent: none, as before (a requester
   * that predates them would fail its stream on one). A worker that predates the field ignores
   * it and sends none.
   */
  queued?: boolean;
}

/**
 * Run a job on the peer and stream it back. Refusals before the first event travel as the
 * connection's `error` with the refusal's code (`too_many_jobs`, `unknown_model`, ...).
 */
export const SubmitMessage: MessageDefinition<SubmitBody, never, InferenceEvent> = defineMessage(
  "inference.submit",
  z.object({
    job: networkJobSchema,
    topLogprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).optional(),
    resume: z.array(z.number().int().nonnegative()).max(GENERATION_LIMITS.maxTokens).optional(),
    tokensPerEvent: z.number().int().min(1).max(MAX_TOKENS_PER_EVENT).optional(),
    gatherMs: z.number().int().min(0).max(MAX_GATHER_MS).optional(),
    queued: z.boolean().optional(),
  }),
  {
    chunk: InferenceEventMessage,
  },
);

/** Most models one node lists: a node serves a handful; this bounds a hostile reply. */
export const MAX_LISTED_MODELS = 256;

/** Body of `inference.models`. */
export interface ModelListBody {
  /** The models the peer runs jobs for. */
  models: WireModelInfo[];
}

/** Reply to `inference.list_models`. */
export const ModelListMessage: MessageDefinition<ModelListBody> = defineMessage(
  "inference.models",
  z.object({ models: z.array(modelInfoSchema).max(MAX_LISTED_MODELS) }),
);

/** Ask a worker which models it runs. */
export const ListModelsMessage: MessageDefinition<Record<string, never>, ModelListBody> =
  defineMessage(
    "inference.list_models",
    z.object({}) as unknown as z.ZodType<Record<string, never>>,
    {
      reply: ModelListMessage,
    },
  );

/** Body of `inference.proof`. */
export interface ProofBody {
  /**
   * The proof data the worker committed to, signed by the worker for this receipt, or null
   * when it holds none.
   */
  served: ServedProof | null;
}

/** Reply to `inference.get_proof`. */
export const ProofMessage: MessageDefinition<ProofBody> = defineMessage(
  "inference.proof",
  z.object({ served: ServedProofSchema.nullable() }),
);

/** Body of `inference.get_proof`. */
export interface GetProofBody {
  /** Hex receipt id. */
  receiptId: string;
  /**
   * The worker whose proof it is, when the request goes to another node to relay (the job's
   * requester, connected to the worker): that node asks the worker over its own connection and
   * passes the answer back. What comes back is signed by the worker, so a relay cannot alter it.
   */
  worker?: Uint8Array;
}

/** A validator's challenge: the worker's proof data for one of its receipts. */
export const ProofRequestMessage: MessageDefinition<GetProofBody, ProofBody> = defineMessage(
  "inference.get_proof",
  z.object({
    receiptId: z.string().regex(HEX64),
    worker: z.instanceof(Uint8Array).refine((b) => b.length === 32, "expected 32 bytes")
      .optional(),
  }),
  { reply: ProofMessage },
);

/** Body of `inference.receipt`. */
export interface KeptReceiptBody {
  /**
   * The worker's signed receipt of the job, kept because its `end` event could not be sent (the
   * connection closed first), or null when it keeps none for this requester.
   */
  receipt: Receipt | null;
  /**
   * Why null, when the worker is sure it never will have one: {@link UNKNOWN_JOB}. Absent: not
   * yet (still signing, or kept for another key); the requester asks again later.
   */
  reason?: string;
}

/**
 * `inference.receipt`'s `reason` when the worker has no trace of the job (not running, no proof
 * record: never admitted, or killed before signing): its requester stops asking and lets the
 * job's retry run (review s79 crash F4).
 */
export const UNKNOWN_JOB = "unknown_job";

/** Reply to `inference.get_receipt`. */
export const KeptReceiptMessage: MessageDefinition<KeptReceiptBody> = defineMessage(
  "inference.receipt",
  // A peer from before `reason` strips it (bodies are not strict) and asks again, as before.
  z.object({ receipt: ReceiptSchema.nullable(), reason: z.string().max(64).optional() }),
);

/** Body of `inference.get_receipt`. */
export interface GetReceiptBody {
  /** Hex id of a job the asker submitted to this worker. */
  jobId: string;
  /**
   * The output positions the asker's client held when it cancelled the job (`held_cancel.ts`),
   * when it did. A worker that had finished the job first (its last tokens still on their way)
   * answers with its `cancelled` receipt over those, signed from the finished job's proof data,
   * not the finished one (`docs/PROTOCOL.md`, "Through a forwarding node"). Optional: a worker
   * from before it reads the request as it was and answers the finished receipt, which the asker
   * drops as no receipt of its client's.
   */
  held?: number;
}

/**
 * The requester of a job asks its worker for the receipt whose `end` event the connection lost
 * after every token had been delivered (`docs/PROTOCOL.md`, "Failover"): asked on a later
 * connection, answered only to the key that submitted the job.
 */
export const ReceiptRequestMessage: MessageDefinition<GetReceiptBody, KeptReceiptBody> =
  defineMessage(
    "inference.get_receipt",
    z.object({
      jobId: z.string().regex(HEX64),
      held: z.number().int().min(1).max(GENERATION_LIMITS.maxTokens).optional(),
    }),
    { reply: KeptReceiptMessage },
  );

/** Body of `validation.receipt_ack`. */
export interface ReceiptAckBody {
  /** Whether the receipt entered the ledger as pending (or was already there). */
  recorded: boolean;
  /** Why not (an error code), when it did not. */
  refusal?: string;
}

/** Reply to `validation.receipt`. Never says whether the receipt will be challenged. */
export const ReceiptAckMessage: MessageDefinition<ReceiptAckBody> = defineMessage(
  "validation.receipt_ack",
  z.object({ recorded: z.boolean(), refusal: z.string().max(64).optional() }),
);

/** Body of `validation.receipt`. */
export interface ReceiptAnnouncementBody {
  /** The worker's signed receipt. */
  receipt: Receipt;
  /** The job it is for (checked against `receipt.jobId`); a validator re-runs it. */
  job: TextJob;
  /** The requester's signed assignment of the job to the worker (what gets it credited). */
  assignment?: JobAssignment;
}

/** A receipt announced to a validator (by its worker or by whoever relayed the job). */
export const ReceiptAnnouncementMessage: MessageDefinition<
  ReceiptAnnouncementBody,
  ReceiptAckBody
> = defineMessage(
  "validation.receipt",
  z.object({
    receipt: ReceiptSchema,
    job: networkJobSchema,
    assignment: JobAssignmentSchema.optional(),
  }),
  { reply: ReceiptAckMessage },
);

/** Body of `validation.verdict`. */
export interface VerdictBody {
  /** A validator's signed verdict. */
  verdict: Verdict;
}

/** A verdict, spread to every node that keeps a ledger. */
export const VerdictAnnouncementMessage: MessageDefinition<VerdictBody> = defineMessage(
  "validation.verdict",
  z.object({ verdict: VerdictSchema }),
);

/** Body of `validation.fraud_proof`. */
export interface FraudProofBody {
  /** A validator's signed fraud proof. */
  proof: FraudProof;
}

/** A fraud proof, spread to every node that keeps a ledger; each checks it before it slashes. */
export const FraudProofAnnouncementMessage: MessageDefinition<FraudProofBody> = defineMessage(
  "validation.fraud_proof",
  z.object({ proof: FraudProofSchema }),
);

/** Body of `validation.stream_proof`. */
export interface StreamProofBody {
  /** An accuser's signed stream proof (`protocols/stream_proof.ts`). */
  proof: StreamProof;
}

/**
 * A stream proof, spread to every node that keeps a ledger: each replays the lost worker's
 * signed stream before it slashes, and charges the accuser if the replay refutes it.
 */
export const StreamProofAnnouncementMessage: MessageDefinition<StreamProofBody> = defineMessage(
  "validation.stream_proof",
  z.object({ proof: StreamProofSchema }),
);

/** Body of `validation.stake`. */
export interface StakeBody {
  /** A key's signed pledge of stake. */
  pledge: StakePledge;
}

/** A node's stake pledge, so other ledgers accept (and can slash) its receipts. */
export const StakeAnnouncementMessage: MessageDefinition<StakeBody> = defineMessage(
  "validation.stake",
  z.object({ pledge: StakePledgeSchema }),
);

/** The messages a worker serves. */
export const INFERENCE_PROTOCOL_MESSAGES = [
  SubmitMessage,
  ListModelsMessage,
  ProofRequestMessage,
  ReceiptRequestMessage,
] as const;

/** The messages a ledger-keeping node serves. */
export const VALIDATION_PROTOCOL_MESSAGES = [
  ReceiptAnnouncementMessage,
  VerdictAnnouncementMessage,
  FraudProofAnnouncementMessage,
  StreamProofAnnouncementMessage,
  StakeAnnouncementMessage,
] as const;

/**
 * Jobs, tokens, receipts and proof data. Every node speaks it (a node without a model still
 * forwards its clients' jobs); a peer that runs no model answers `inference.list_models` with
 * `no_handler`, so jobs are routed only to peers that listed a model.
 */
export const INFERENCE_PROTOCOL: Protocol = defineProtocol(
  "inference",
  1,
  INFERENCE_PROTOCOL_MESSAGES,
);

/**
 * Receipts, verdicts, fraud and stream proofs and stake pledges. Spoken by nodes that keep a ledger; a
 * node without one is never sent a receipt (the request would fail at once, unsent).
 */
export const VALIDATION_PROTOCOL: Protocol = defineProtocol(
  "validation",
  1,
  VALIDATION_PROTOCOL_MESSAGES,
);
