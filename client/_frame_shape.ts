/**
 * Whether a frame from `/v1/stream` has the shape docs/API.md gives its type, before the client
 * acts on it: a faulty or impostor server's `error` with an object for its `code`, or a `done`
 * without `usage`, would otherwise reach the caller as a `StreamRequestError` whose `code` is not
 * a string, or as a `TypeError` thrown deep in the caller's own code, instead of as what it is, a
 * server that does not speak this API. Not part of the public API.
 *
 * @module
 */
import type { WsServerMessage } from "../server/stream_protocol.ts";

/**
 * The longest `code` of an `error` frame the client takes. The node's codes are
 * lower_snake_case names (`protocols/errors.ts`), the longest today 25 characters
 * (`delivered_tokens_diverged`); a program matches on them and `cli.ts infer` prints them, so one
 * that is not such a name, or is longer than any name, is not the node's.
 */
export const MAX_ERROR_CODE_CHARS = 64;

/** A stable error code: what the node's codes look like (`too_many_jobs`). */
const ERROR_CODE = /^[a-z][a-z0-9_]*$/;

/** The `finish_reason`s of a `done` (docs/API.md); the node ends a failed job with `error`. */
const FINISH_REASONS: ReadonlySet<string> = new Set(["stop", "length", "cancelled"]);

/** A field's check: what it must be, or undefined when the value is that. */
type FieldCheck = (value: unknown) => string | undefined;

const string: FieldCheck = (v) => typeof v === "string" ? undefined : "a string";
const count: FieldCheck = (v) =>
  Number.isSafeInteger(v) && (v as number) >= 0 ? undefined : "a whole number, 0 or more";
const place: FieldCheck = (v) =>
  Number.isSafeInteger(v) && (v as number) >= 1 ? undefined : "a whole number, 1 or more";
const number: FieldCheck = (v) => Number.isFinite(v) ? undefined : "a finite number";
const numberOrNull: FieldCheck = (v) => v === null ? undefined : number(v);
const seconds: FieldCheck = (v) =>
  Number.isFinite(v) && (v as number) >= 0 ? undefined : "a number of seconds, 0 or more";
const finishReason: FieldCheck = (v) =>
  typeof v === "string" && FINISH_REASONS.has(v) ? undefined : "stop, length or cancelled";
const errorCode: FieldCheck = (v) =>
  typeof v === "string" && v.length <= MAX_ERROR_CODE_CHARS && ERROR_CODE.test(v)
    ? undefined
    : `a lower_snake_case code of at most ${MAX_ERROR_CODE_CHARS} characters`;
const anObject: FieldCheck = (v) =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? undefined : "an object";

/** The fields of an object, each with its check; `optional` ones may be absent. */
interface Shape {
  required: Record<string, FieldCheck>;
  optional?: Record<string, FieldCheck>;
}

/** What is wrong with `value` as an object of `shape`, naming the field under `path`. */
function shapeProblem(value: unknown, shape: Shape, path: string): string | undefined {
  const notObject = anObject(value);
  if (notObject !== undefined) return `${path} is not ${notObject}`;
  const record = value as Record<string, unknown>;
  for (const [name, check] of Object.entries(shape.required)) {
    const field = path === "" ? name : `${path}.${name}`;
    if (!(name in record)) return `${field} is missing`;
    const wrong = check(record[name]);
    if (wrong !== undefined) return `${field} is not ${wrong}`;
  }
  for (const [name, check] of Object.entries(shape.optional ?? {})) {
    if (record[name] === undefined) continue;
    const wrong = check(record[name]);
    if (wrong !== undefined) return `${path === "" ? name : `${path}.${name}`} is not ${wrong}`;
  }
  return undefined;
}

/** A nested object's check, from its shape. */
function nested(shape: Shape): (path: string) => FieldCheck {
  return (path) => (v) => {
    const wrong = shapeProblem(v, shape, path);
    return wrong === undefined ? undefined : `well formed (${wrong})`;
  };
}

const usage = nested({
  required: { prompt_tokens: count, completion_tokens: count, total_tokens: count },
})("usage");
const timings = nested({
  required: {
    queue_ms: numberOrNull,
    ttft_ms: numberOrNull,
    tokens_per_s: number,
    total_ms: number,
  },
})("timings");
const receiptError = nested({ required: { code: string, message: string } })("receipt_error");
const topLogprob = nested({ required: { token_id: count, text: string, logprob: number } });
const topLogprobs: FieldCheck = (v) => {
  if (!Array.isArray(v)) return "an array";
  for (const [i, item] of v.entries()) {
    const wrong = topLogprob(`top_logprobs[${i}]`)(item);
    if (wrong !== undefined) return wrong;
  }
  return undefined;
};

/** Each message type's shape (docs/API.md, "Server → client"). */
const SHAPES: Record<WsServerMessage["type"], Shape> = {
  start: {
    required: {
      id: string,
      job_id: string,
      model: string,
      model_name: string,
      execution_provider: string,
      prompt_tokens: count,
    },
  },
  queued: { required: { id: string, position: place } },
  token: {
    required: { id: string, index: count, token_id: count, text: string },
    optional: { logprob: number, top_logprobs: topLogprobs },
  },
  done: {
    required: { id: string, job_id: string, finish_reason: finishReason, usage, timings },
    optional: { receipt: anObject, receipt_error: receiptError },
  },
  error: {
    required: { code: errorCode, message: string },
    optional: { id: string, refused_id: string, retry_after_s: seconds },
  },
};

/**
 * What is wrong with `frame` as a message of its type, naming the field (`usage.total_tokens is
 * not a whole number, 0 or more`), never its value (which is the server's, and may hold anything);
 * undefined when it is well formed, or of a type this client does not know (a later node's: it is
 * ignored).
 *
 * @example
 * ```ts
 * import { frameProblem } from "./_frame_shape.ts";
 * const queued = { type: "queued", id: "r1", position: 2 };
 * frameProblem(queued); // undefined
 * const odd = { type: "queued", id: "r1", position: "2" };
 * frameProblem(odd); // "position is not a whole number, 1 or more"
 * ```
 */
export function frameProblem(frame: { type: string }): string | undefined {
  const shape = Object.hasOwn(SHAPES, frame.type)
    ? SHAPES[frame.type as WsServerMessage["type"]]
    : undefined;
  return shape === undefined ? undefined : shapeProblem(frame, shape, "");
}
