/**
 * The node-wide budget of token bytes that jobs produced but their consumers have not read yet.
 *
 * A job's token stream is pull-driven: the model computes the next token when the consumer asks,
 * so a consumer that stops reading (a WebSocket client that reads nothing, an SSE client on a
 * full TCP window, a library user that forgot the stream) holds its job, and so its batch seat,
 * for as long as it does not read. That is right while nobody waits for a seat (a slow reader
 * slows only its own job), and wrong while others do: one non-reading socket could then stall
 * every other client of the node. So a job whose consumer has not read for
 * {@link SLOW_READER_GRACE_MS} while other jobs wait for its model's seats runs on into memory
 * (`actors/inference_job.ts`), and the bytes it holds there are counted here, against one
 * budget for the whole node, so memory stays bounded however many readers stall.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";

/**
 * How long a job's consumer may read nothing, while other jobs wait for a seat, before the job
 * stops waiting for it and runs on into memory. Long enough that a reader that is only busy (a
 * GC pause, a full socket being drained, a client between two reads of a burst) keeps its job
 * pull-driven and costs no memory; short next to a client's stall timeout (a queued job's
 * requester waits seconds at most for a stalled neighbour, not the 30 s idle cut-off).
 */
export const SLOW_READER_GRACE_MS = 1_000;

/**
 * How long a job that would run on into memory but finds {@link DEFAULT_UNREAD_TOKEN_BYTES}
 * full may keep its seat, while others wait for one, before it is cancelled with
 * {@link SlowReaderError}. The budget fills only when many readers stall at once; their jobs
 * then must not hold every seat either. A second of the same order as the first grace: a budget
 * that frees (a reader that drains its backlog) lets the job go on instead.
 */
export const SLOW_READER_CANCEL_GRACE_MS = 1_000;

/**
 * Estimated bytes of one streamed token held in memory, before its top logprobs: the object,
 * its numbers and the finish reason. An estimate, not a measure: the budget bounds memory to
 * within a small factor, which is all it must do.
 */
const TOKEN_BASE_BYTES = 128;
/** Estimated bytes of one top-logprob entry (an object with an id, a number and a string). */
const TOP_LOGPROB_BYTES = 96;
/** Bytes a string's character takes in a JavaScript engine at most (UTF-16). */
const BYTES_PER_CHAR = 2;
/**
 * Characters of token text reserved before a token is read (its size is known only after):
 * longer than nearly every token of a byte-level or BPE vocabulary; a longer one is charged what
 * it really takes once read.
 */
const RESERVED_TOKEN_CHARS = 16;

/**
 * Default of the node-wide budget: 8 batch seats (the node's default) × a 4096-token context
 * (the longest `max_tokens` the edge accepts) × about 2 KiB per token (its text and 20 top
 * logprobs, the most a client may ask for: `TOKEN_BASE_BYTES` + 20 × `TOP_LOGPROB_BYTES`) is
 * 64 MiB: every seat's whole output can wait in memory for its reader, so a node whose seats
 * all have stalled readers still frees every seat; past that, memory would grow with the
 * number of stalled clients, so it stops there.
 */
export const DEFAULT_UNREAD_TOKEN_BYTES = 64 * 1024 * 1024;

/**
 * One job whose tokens wait in memory for its reader: what the budget evicts to make room for
 * another when it is full (`evict` drops every unread token it holds, releasing their bytes, and
 * ends its reader's stream with {@link SlowReaderError}).
 */
export interface UnreadTokenHolder {
  /** Drop every unread token held (releasing their bytes here); end the job if it still runs. */
  evict(): void;
}

/**
 * The node-wide count of unread token bytes against a limit, per holder (job); see the module
 * comment. When a reservation does not fit, the holder of the most unread bytes pays, not the
 * job that happens to ask next: it is evicted and the reservation tried again (review s72 F1).
 */
export class UnreadTokenBudget {
  readonly #limit: number;
  #used = 0;
  #evictions = 0;
  /** Bytes per holder; only holders that hold some, so an eviction scans live backlogs only. */
  readonly #held = new Map<UnreadTokenHolder, number>();

  /**
   * Create it (the InferenceActor does, unless given one).
   *
   * @param limit Bytes at most; default {@link DEFAULT_UNREAD_TOKEN_BYTES}.
   */
  constructor(limit: number = DEFAULT_UNREAD_TOKEN_BYTES) {
    if (!(limit >= 0)) throw new RangeError("the unread token budget must not be negative");
    this.#limit = limit;
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** The limit. */
  get limit(): number {
    return this.#limit;
  }

  /** Holders evicted to make room for another since this budget was created. */
  get evictions(): number {
    return this.#evictions;
  }

  /** Bytes `holder` holds now. */
  heldBy(holder: UnreadTokenHolder): number {
    return this.#held.get(holder) ?? 0;
  }

  /**
   * Take `bytes` for `holder` if they fit under the limit, evicting, while they do not, the
   * holder of the most unread bytes when it holds more than `holder`; returns whether they were
   * taken. `false`: `holder` is itself the largest (or nothing else can be evicted), and its
   * reader is the slow one.
   */
  reserve(bytes: number, holder: UnreadTokenHolder): boolean {
    const tried = new Set<UnreadTokenHolder>();
    while (this.#used + bytes > this.#limit) {
      const mine = this.heldBy(holder);
      let largest: UnreadTokenHolder | undefined;
      let most = mine;
      for (const [other, held] of this.#held) {
        if (other !== holder && !tried.has(other) && held > most) [largest, most] = [other, held];
      }
      if (largest === undefined) return false;
      // Each holder once: one that frees less than it holds (a token read in flight) is not
      // asked again, so the loop ends after at most as many evictions as there are holders.
      tried.add(largest);
      this.#evictions++;
      largest.evict();
    }
    this.#add(holder, bytes);
    return true;
  }

  /** Replace `holder`'s reservation of `reserved` bytes by what was really taken, `actual`. */
  settle(reserved: number, actual: number, holder: UnreadTokenHolder): void {
    this.#add(holder, actual - reserved);
  }

  /** Give back `bytes` of `holder` (a token read by its consumer, or dropped). */
  release(bytes: number, holder: UnreadTokenHolder): void {
    this.#add(holder, -bytes);
  }

  #add(holder: UnreadTokenHolder, bytes: number): void {
    const before = this.heldBy(holder);
    const after = Math.max(0, before + bytes);
    this.#used = Math.max(0, this.#used + after - before);
    if (after > 0) this.#held.set(holder, after);
    else this.#held.delete(holder);
  }
}

/** What a token read into memory is reserved at before it is read (see `RESERVED_TOKEN_CHARS`). */
export function reservedTokenBytes(topLogprobs: number): number {
  return TOKEN_BASE_BYTES + RESERVED_TOKEN_CHARS * BYTES_PER_CHAR +
    topLogprobs * (TOP_LOGPROB_BYTES + RESERVED_TOKEN_CHARS * BYTES_PER_CHAR);
}

/** The estimated bytes a streamed token holds in memory. */
export function tokenBytes(
  token: { text: string; topLogprobs?: readonly { text: string }[] },
): number {
  let bytes = TOKEN_BASE_BYTES + token.text.length * BYTES_PER_CHAR;
  for (const top of token.topLogprobs ?? []) {
    bytes += TOP_LOGPROB_BYTES + top.text.length * BYTES_PER_CHAR;
  }
  return bytes;
}

/**
 * A job's unread tokens were dropped because its consumer read nothing while other jobs waited
 * for a seat and the node's budget of unread tokens was full, and this job held the most of it
 * (HTTP 408's sense: the client was too slow). A job still running is cancelled and earns no
 * receipt; a job that had already finished keeps its receipt, and only its undelivered tokens
 * are lost. The consumer is told in its stream's error.
 */
export class SlowReaderError extends VeriflowError {
  /** The job id. */
  readonly jobId: string;

  /**
   * Create it.
   *
   * @param jobId The job id.
   */
  constructor(jobId: string) {
    super(
      "slow_reader",
      `job ${jobId}'s unread tokens were dropped (the job cancelled if still running): its ` +
        "reader read nothing while other jobs waited for a seat and the node's memory for " +
        "unread tokens was full",
    );
    this.jobId = jobId;
  }
}
