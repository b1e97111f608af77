/**
 * Peer hellos: what a node says about itself to the peers it connects to — its roles, the
 * models it serves (by CID), its stored bytes against its quota, its load and its software
 * version — signed by its key, so a hello can be checked by anyone it is passed to, not only by
 * the peer on the other end of the connection.
 *
 * A node sends its hello when a connection opens and again whenever it changes (a job starts
 * or ends, a model loads), at most once per refresh interval, and at least once per
 * {@link HELLO_MAX_AGE_MS} so a silent peer's table row does not go stale. A later hello
 * (higher `seq`) replaces an earlier one. Routers pick workers from these rows: the models a
 * worker holds, whether it has a free slot, its load.
 *
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "./cbor.ts";
import { type Identity, verifySignature } from "./identity.ts";
import { defineMessage, type MessageDefinition } from "./message_registry.ts";
import { defineProtocol, type Protocol } from "./connection_protocols.ts";
import { hasOnlyWellFormedStrings, ILL_FORMED_STRING_MESSAGE } from "./well_formed.ts";
import { holdsAtMostValues } from "./value_count.ts";

/** Version of the hello format. */
export const PEER_HELLO_VERSION = 1;
const HELLO_DOMAIN = "veriflow/hello/v1";
/** A node re-sends its hello at least this often, changed or not. */
export const HELLO_MAX_AGE_MS = 30_000;
/** Most models a hello may list. */
export const MAX_HELLO_MODELS = 64;

/**
 * What a hello's `version` may be: 1 to 32 of the characters a semver string uses (`0.1.0`,
 * `1.2.0-rc.1+build.5`). The version reaches the operator as it is: a `/metrics` label
 * (`veriflow_peer_info`), the dashboard, `cli.ts status`. Any text up to 32 characters let one
 * peer put CR, escape sequences and bidi overrides there (review s76 F1). A hello with another
 * version is refused whole, as any other wrong shape is (`invalid_body` back, the connection
 * stays): its signature covers the version, so it cannot be kept with the field rewritten, and
 * every released node sends `deno.json`'s version, which fits.
 */
export const HELLO_VERSION_PATTERN: RegExp = /^[0-9A-Za-z.+-]{1,32}$/;

/** The roles a node can run (`cli.ts start --no-ROLE` switches one off). */
export const PEER_ROLES = ["inference", "storage", "prover", "validator"] as const;
/** One of {@link PEER_ROLES}. */
export type PeerRole = typeof PEER_ROLES[number];

/** A worker's load: what a router weighs before sending it a job. */
export interface PeerLoad {
  /** Jobs running now. */
  running: number;
  /** Jobs waiting for a slot. */
  queued: number;
  /**
   * Jobs it runs side by side: over the models it serves, each one's batch seats (or the node's
   * `inference.concurrency` for a model that reports none), summed (`node/node_hello.ts`). A node
   * older than review s58 says its `inference.concurrency` here, whatever its models seat.
   */
  slots: number;
  /** Jobs it queues beyond its slots before refusing (per model: each has its own queue). */
  queueLimit: number;
}

/** Bytes stored against the quota. */
export interface PeerStorage {
  /** Bytes held. */
  usedBytes: number;
  /** The quota; `null` when unlimited. */
  quotaBytes: number | null;
}

/** What a hello says (everything but the envelope). */
export interface PeerHelloBody {
  /** Software version (`deno.json`'s), matching {@link HELLO_VERSION_PATTERN}. */
  version: string;
  /** Roles it runs. */
  roles: PeerRole[];
  /** CIDs of the models it serves. */
  models: string[];
  /** Storage use (with the storage role). */
  storage?: PeerStorage;
  /** Inference load (with the inference role). */
  load?: PeerLoad;
}

/** A signed hello. */
export interface PeerHello extends PeerHelloBody {
  /** Format version. */
  v: number;
  /** The node's key (ed25519 public key). */
  key: Uint8Array;
  /** Increases with every hello the node sends: a later one replaces an earlier one. */
  seq: number;
  /** Unix ms of issue. */
  issuedAt: number;
  /** Signature by `key` over {@link peerHelloSigningBytes}. */
  sig: Uint8Array;
}

const bytes = (len: number) =>
  z.instanceof(Uint8Array).refine((b) => b.length === len, { message: `expected ${len} bytes` });
const count = z.number().int().nonnegative().max(1_000_000);
const byteCount = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** The fields of a hello this version knows, but for its objects (`storage`, `load`). */
const helloFields = {
  v: z.literal(PEER_HELLO_VERSION),
  key: bytes(32),
  version: z.string().regex(
    HELLO_VERSION_PATTERN,
    "a hello's version is 1 to 32 of 0-9 A-Z a-z . + - (semver-like)",
  ),
  roles: z.array(z.enum(PEER_ROLES)).max(PEER_ROLES.length),
  models: z.array(z.string().max(128)).max(MAX_HELLO_MODELS),
  seq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  issuedAt: z.number().int().nonnegative(),
  sig: bytes(64),
};
const storageFields = { usedBytes: byteCount, quotaBytes: byteCount.nullable() };
const loadFields = { running: count, queued: count, slots: count, queueLimit: count };

/**
 * Most values a hello may hold: map entries and array items, at any depth. An honest one holds
 * about a hundred at most ({@link MAX_HELLO_MODELS} models, a dozen fields); what a later version
 * adds is kept and signed, so it is bounded here. Unbounded, one validly signed hello of 1 MiB
 * standing for ~95,000 fields passed and verified, ~1.5 s of parsing, canonical encoding and
 * hashing on its receiver each time it was sent, and was never refused.
 */
export const MAX_HELLO_VALUES = 1024;

/**
 * Zod schema of a hello on the wire: the fields this version knows, checked, and any others a
 * later version adds, kept — at the top and inside `storage` and `load` alike: its signature
 * covers them, so stripping them would make a newer node's honest hello fail to verify
 * ({@link knownHelloFields} drops them once it has). At most {@link MAX_HELLO_VALUES} values,
 * counted before anything else is checked.
 */
export const PeerHelloSchema: z.ZodType<PeerHello> = z.unknown()
  .refine(
    (value) => holdsAtMostValues(value, MAX_HELLO_VALUES),
    `a hello holds at most ${MAX_HELLO_VALUES} values`,
  )
  .pipe(
    z.looseObject({
      ...helloFields,
      storage: z.looseObject(storageFields).optional(),
      load: z.looseObject(loadFields).optional(),
    }).refine(
      // Fields a later version adds are signed too: every string, known or not, must be
      // well-formed Unicode for the signing bytes to exist (`well_formed.ts`).
      hasOnlyWellFormedStrings,
      ILL_FORMED_STRING_MESSAGE,
    ),
  ) as unknown as z.ZodType<PeerHello>;

const knownFieldsSchema = z.object({
  ...helloFields,
  storage: z.object(storageFields).optional(),
  load: z.object(loadFields).optional(),
});

/** `hello` with only the fields this version knows (what a node keeps of a verified hello). */
export function knownHelloFields(hello: PeerHello): PeerHello {
  return knownFieldsSchema.parse(hello) as unknown as PeerHello;
}

/** The bytes a hello's signature covers. */
export function peerHelloSigningBytes(hello: Omit<PeerHello, "sig">): Uint8Array {
  const { sig: _sig, ...unsigned } = hello as PeerHello;
  return encodeCanonical({ domain: HELLO_DOMAIN, hello: unsigned });
}

/**
 * Sign `body` as `identity`'s hello number `seq`.
 *
 * @example
 * ```ts
 * import { Identity } from "./identity.ts";
 * import { signPeerHello, verifyPeerHello } from "./peer_hello.ts";
 * const hello = signPeerHello(Identity.generate(), {
 *   version: "0.1.0",
 *   roles: ["inference"],
 *   models: [],
 *   load: { running: 0, queued: 0, slots: 4, queueLimit: 64 },
 * }, 1, Date.now());
 * verifyPeerHello(hello); // true
 * ```
 */
export function signPeerHello(
  identity: Identity,
  body: PeerHelloBody,
  seq: number,
  issuedAt: number,
): PeerHello {
  const unsigned = {
    v: PEER_HELLO_VERSION,
    key: identity.publicKey,
    ...stripUndefined(body),
    seq,
    issuedAt,
  };
  return { ...unsigned, sig: identity.sign(peerHelloSigningBytes(unsigned)) };
}

/** True when `value` is a well-formed hello signed by its own key. Never throws. */
export function verifyPeerHello(value: unknown): value is PeerHello {
  const r = PeerHelloSchema.safeParse(value);
  if (!r.success) return false;
  return verifySignature(r.data.key, peerHelloSigningBytes(r.data), r.data.sig);
}

/** Whether a worker with `load` has a free slot or queue place. */
export function hasCapacity(load: PeerLoad): boolean {
  return load.running + load.queued < load.slots + load.queueLimit;
}

function stripUndefined(body: PeerHelloBody): PeerHelloBody {
  const out = { ...body };
  if (out.storage === undefined) delete out.storage;
  if (out.load === undefined) delete out.load;
  return out;
}

/** `peer.hello`: a node's signed hello (one-way; sent on connect and on change). */
export const PeerHelloMessage: MessageDefinition<{ hello: PeerHello }> = defineMessage(
  "peer.hello",
  z.object({ hello: PeerHelloSchema }),
);

/** Hellos. Every node speaks it. */
export const PEER_PROTOCOL: Protocol = defineProtocol("peer", 1, [PeerHelloMessage]);
