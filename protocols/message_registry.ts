/**
 * Message types and their schemas: one definition per type, one place.
 *
 * A {@link MessageDefinition} ties a `type` string to a zod schema for its body and, for
 * requests, to the definition of its reply or of the chunks of its streamed reply. Other
 * areas define their own types next to the code that handles them and register them on the
 * registry a connection uses; handlers and requesters then get the inferred body types.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { defineMessage, MessageRegistry } from "./message_registry.ts";
 * const Echoed = defineMessage("example.echoed", z.object({ text: z.string() }));
 * const Echo = defineMessage("example.echo", z.object({ text: z.string() }), { reply: Echoed });
 * const registry = new MessageRegistry().register(Echo);   // registers Echoed too
 * registry.parseBody("example.echo", { text: "hi" });      // { text: "hi" }
 * ```
 *
 * @module
 */
/**
 * What the registry needs of a body schema: zod's `safeParse`. Every zod schema fits
 * (`z.object({...})`, `z.null()`, ...); the body type is inferred from it.
 */
export interface BodySchema<T> {
  /**
   * Validate `input`; on success `data` is the parsed (typed, unknown keys stripped) value.
   * `context` is zod's parse context (see {@link FIRST_ISSUE_ONLY}).
   */
  safeParse(input: unknown, context?: object): SafeParseResult<T>;
}

/**
 * Parse context that makes zod stop at a body's first wrong-typed value (`abortEarly`, the flag
 * its own `validate` sets; a valid body parses exactly as without it). Only the first issue is
 * reported, and without it zod checks every item of an invalid array: a 1 MiB frame of 100,000
 * wrong-typed items made 200,000 issues and blocked the node about a second, so a peer refused
 * a dozen times in 10 s (under `maxRefusals`) could keep a node busy. Failed refinements and
 * size checks (`.max()` on a string) do not stop zod even so: an array that crosses the wire
 * needs its own `.max()`, which zod checks before the items. A zod without the flag ignores it.
 */
const FIRST_ISSUE_ONLY = Object.freeze({ abortEarly: true });

/** The result shape of {@link BodySchema.safeParse}. */
export type SafeParseResult<T> =
  | { success: true; data: T }
  | { success: false; error: { issues: readonly SchemaIssue[] } };

/** One validation issue: where, and what is wrong. */
export interface SchemaIssue {
  /** Path of the offending value inside the body. */
  readonly path: readonly PropertyKey[];
  /** Human-readable description. */
  readonly message: string;
}
import {
  InvalidBodyError,
  type ProtocolErrorOptions,
  UnknownTypeError,
} from "./protocol_errors.ts";

/**
 * A message type: its name, its body schema, and (for requests) what answers it.
 * `B` = body, `R` = reply body, `C` = streamed chunk body.
 */
export interface MessageDefinition<B = unknown, R = unknown, C = unknown> {
  /** Wire `type`; dotted lower-case by convention (`inference.generate`). */
  readonly type: string;
  /** Schema every inbound body of this type must satisfy. */
  readonly schema: BodySchema<B>;
  /** Definition of the single reply, for request/response types. */
  readonly reply?: MessageDefinition<R, unknown, unknown>;
  /** Definition of each chunk, for types answered with a stream. */
  readonly chunk?: MessageDefinition<C, unknown, unknown>;
}

/** Any message definition, whatever its body types (for collections and registries). */
// deno-lint-ignore no-explicit-any
export type AnyMessageDefinition = MessageDefinition<any, any, any>;

/** Body type of a definition. */
export type BodyOf<D> = D extends MessageDefinition<infer B, unknown, unknown> ? B : never;
/** Reply body type of a definition. */
export type ReplyOf<D> = D extends MessageDefinition<unknown, infer R, unknown> ? R : never;
/** Chunk body type of a definition. */
export type ChunkOf<D> = D extends MessageDefinition<unknown, unknown, infer C> ? C : never;

/** Options of {@link defineMessage}: what answers this message, if anything. */
export interface DefineMessageOptions<R, C> {
  /** The reply's definition (request/response). */
  reply?: MessageDefinition<R, unknown, unknown>;
  /** The chunk definition (streamed reply). Exclusive with `reply`. */
  chunk?: MessageDefinition<C, unknown, unknown>;
}

/** Longest accepted type name (mirrors the envelope's limit). */
const MAX_TYPE_NAME = 128;
const TYPE_NAME = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;

/**
 * Define a message type. Pure: register it on a {@link MessageRegistry} (or pass it to a
 * connection's `handle`/`request`, which registers it) to make it known on the wire.
 *
 * @param type Dotted lower-case name, unique across the project.
 * @param schema Zod schema of the body.
 * @param options The reply or chunk definition for requests.
 * @returns The definition, typed by the schema's output.
 */
export function defineMessage<B, R = never, C = never>(
  type: string,
  schema: BodySchema<B>,
  options?: DefineMessageOptions<R, C>,
): MessageDefinition<B, R, C> {
  if (type.length > MAX_TYPE_NAME || !TYPE_NAME.test(type)) {
    throw new TypeError(`invalid message type name ${JSON.stringify(type)}`);
  }
  if (options?.reply && options?.chunk) {
    throw new TypeError(`${type}: a message is answered by a reply or by a stream, not both`);
  }
  return Object.freeze({ type, schema, reply: options?.reply, chunk: options?.chunk });
}

/**
 * What an `invalid_body` refusal says after the field it names when the body's schema is strict
 * and does not know that field (a job's: `protocols/job.ts`): most likely one a later version
 * added. {@link unknownFieldOf} reads the field back.
 */
export const UNKNOWN_FIELD_REASON = "unknown field (from a later version?)";

/** Longest field name an `invalid_body` refusal quotes: the refusal goes back over the wire. */
const MAX_FIELD_CHARS = 64;

/** A field name {@link describeIssue} writes as it is; any other is quoted (JSON). */
const PLAIN_FIELD = /^[A-Za-z0-9_]+$/;

/**
 * The whole of an unknown-field refusal as {@link describeIssue} and `InvalidBodyError` write
 * it: the type, a dotted path of plain field names, {@link UNKNOWN_FIELD_REASON}. Nothing else
 * is read as one (review s81 vwire2, F3): the peer writes the words, and before, any text that
 * ended with the reason was taken for a field, newlines and terminal escapes included.
 */
const UNKNOWN_FIELD_REFUSAL = new RegExp(
  `^invalid body for "[a-z][a-z0-9_.]*": ([A-Za-z0-9_]+(?:\\.[A-Za-z0-9_]+)*): ${
    UNKNOWN_FIELD_REASON.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  }$`,
);

/**
 * Summarise the first zod issue of a refused body (bounded length: it goes back over the wire):
 * its path, then what is wrong. A field the schema does not know is named in the path, then
 * {@link UNKNOWN_FIELD_REASON}.
 *
 * @param error The failed parse's error.
 * @returns The summary.
 */
export function describeIssue(error: { issues: readonly SchemaIssue[] }): string {
  const issue = error.issues[0];
  const path = (issue?.path ?? []).map(String);
  const detail = issue as { code?: unknown; keys?: unknown } | undefined;
  const unknown = detail?.code === "unrecognized_keys" ? detail.keys : undefined;
  if (Array.isArray(unknown) && unknown.length > 0) {
    const key = String(unknown[0]).slice(0, MAX_FIELD_CHARS);
    const field = [...path, PLAIN_FIELD.test(key) ? key : JSON.stringify(key)].join(".");
    return `${field}: ${UNKNOWN_FIELD_REASON}`;
  }
  const where = path.length ? path.join(".") : "(root)";
  return `${where}: ${issue?.message ?? "invalid"}`.slice(0, 200);
}

/**
 * The field an `invalid_body` refusal's message names as one its schema does not know
 * ({@link UNKNOWN_FIELD_REASON}), as a dotted path of plain names (`[A-Za-z0-9_]`), or
 * undefined unless the message is exactly such a refusal: how a requester tells a worker of an
 * older version (it cannot read a field of the job) from a bad job. The peer wrote it: whether
 * the field is one the peer may lack is the caller's to judge (`inference/remote_port.ts`).
 *
 * @example
 * ```ts
 * import { unknownFieldOf } from "./message_registry.ts";
 * unknownFieldOf(
 *   'invalid body for "inference.submit": job.params.minP: unknown field (from a later version?)',
 * ); // "job.params.minP"
 * unknownFieldOf("go away: unknown field (from a later version?)"); // undefined
 * ```
 */
export function unknownFieldOf(message: string): string | undefined {
  return UNKNOWN_FIELD_REFUSAL.exec(message)?.[1];
}

/** The set of message types a connection understands. */
export class MessageRegistry {
  readonly #types = new Map<string, MessageDefinition>();
  /** Types registered as another definition's reply or chunk. */
  readonly #answers = new Set<string>();

  /**
   * Creates a registry.
   * @param definitions Definitions to register right away.
   */
  constructor(definitions: Iterable<AnyMessageDefinition> = []) {
    for (const d of definitions) this.register(d);
  }

  /**
   * Register definitions (and their reply/chunk definitions). Registering the same definition
   * twice is a no-op; a different definition under a taken type name throws, so two areas
   * cannot silently claim one name.
   * @returns this registry, for chaining.
   */
  register(...definitions: AnyMessageDefinition[]): this {
    for (const d of definitions) {
      const existing = this.#types.get(d.type);
      if (existing === d) continue;
      if (existing) {
        throw new TypeError(`message type ${JSON.stringify(d.type)} already registered`);
      }
      this.#types.set(d.type, d as MessageDefinition);
      if (d.reply) {
        this.register(d.reply);
        this.#answers.add(d.reply.type);
      }
      if (d.chunk) {
        this.register(d.chunk);
        this.#answers.add(d.chunk.type);
      }
    }
    return this;
  }

  /** Whether `type` is registered. */
  has(type: string): boolean {
    return this.#types.has(type);
  }

  /**
   * Whether `type` answers another registered type (is its `reply` or `chunk`): a message of it
   * belongs to an exchange. A registered type that answers nothing and is answered by nothing
   * is one-way.
   */
  isAnswer(type: string): boolean {
    return this.#answers.has(type);
  }

  /** The definition of `type`, or undefined. */
  get(type: string): MessageDefinition | undefined {
    return this.#types.get(type);
  }

  /** All registered type names. */
  types(): string[] {
    return [...this.#types.keys()];
  }

  /** A new registry with the same definitions (to extend without touching this one). */
  clone(): MessageRegistry {
    return new MessageRegistry(this.#types.values());
  }

  /**
   * Validate `body` against the schema of `type`.
   * @throws {UnknownTypeError} if the type is not registered.
   * @throws {InvalidBodyError} if the body fails the schema.
   * @returns The parsed (typed, unknown keys stripped) body.
   */
  parseBody(type: string, body: unknown, where?: ProtocolErrorOptions): unknown {
    const definition = this.#types.get(type);
    if (!definition) throw new UnknownTypeError(type, where);
    const result = definition.schema.safeParse(body, FIRST_ISSUE_ONLY);
    if (!result.success) throw new InvalidBodyError(type, describeIssue(result.error), where);
    return result.data;
  }
}
