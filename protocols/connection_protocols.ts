/**
 * Named, versioned protocols on a connection (the protomux idea, over our multiplexer).
 *
 * A protocol is a name, a version and the message types it consists of. Both sides list the
 * protocols they offer in the session handshake; a protocol is *negotiated* when both offered
 * the same name at the same version. On a connection opened with `Connection.open`, a request
 * (or one-way message) may only use a type of a negotiated protocol: we fail it locally with
 * {@link UnsupportedProtocolError} before it reaches the wire, and refuse the peer's with the
 * same code. Core messages (`ping`, `credit`, ...) belong to the connection itself.
 *
 * Versions are whole numbers that change when a protocol changes incompatibly; a node that
 * speaks two versions offers both (`storage` 1 and `storage` 2 with their own types).
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { defineProtocol } from "./connection_protocols.ts";
 * import { defineMessage } from "./message_registry.ts";
 * const Pong = defineMessage("echo.reply", z.object({ text: z.string() }));
 * const Say = defineMessage("echo.say", z.object({ text: z.string() }), { reply: Pong });
 * const Echo = defineProtocol("echo", 1, [Say]);
 * console.log(Echo.name, Echo.version, Echo.messages.length); // echo 1 1
 * ```
 *
 * @module
 */
import type { AnyMessageDefinition } from "./message_registry.ts";
import { UnsupportedProtocolError } from "./protocol_errors.ts";

/** A protocol as offered on the wire: its name and version. */
export interface ProtocolOffer {
  /** Lower-case dotted name (the message type grammar). */
  readonly name: string;
  /** Whole number ≥ 1, changed on incompatible changes. */
  readonly version: number;
}

/** A protocol: name, version and the message types it consists of. */
export interface Protocol extends ProtocolOffer {
  /** Its requests and one-way messages (their replies and chunks come with them). */
  readonly messages: readonly AnyMessageDefinition[];
}

/** Longest protocol name on the wire. */
export const MAX_PROTOCOL_NAME_LENGTH = 64;
/** Most protocols one side may offer: a node speaks a handful; the cap bounds the hello. */
export const MAX_PROTOCOLS = 64;
/** Largest protocol version. */
export const MAX_PROTOCOL_VERSION = 0xffff_ffff;

const PROTOCOL_NAME = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;

/** Whether `name` and `version` are a well-formed protocol offer. */
export function isProtocolOffer(name: string, version: number): boolean {
  return name.length <= MAX_PROTOCOL_NAME_LENGTH && PROTOCOL_NAME.test(name) &&
    Number.isInteger(version) && version >= 1 && version <= MAX_PROTOCOL_VERSION;
}

/**
 * Define a protocol.
 * @param name Lower-case dotted name, unique across the project (`storage`, `inference`).
 * @param version Whole number ≥ 1.
 * @param messages Its request and one-way message types.
 * @returns The frozen protocol.
 */
export function defineProtocol(
  name: string,
  version: number,
  messages: readonly AnyMessageDefinition[],
): Protocol {
  if (!isProtocolOffer(name, version)) {
    throw new TypeError(`invalid protocol ${JSON.stringify(name)} version ${version}`);
  }
  const types = new Set<string>();
  for (const m of messages) {
    if (types.has(m.type)) throw new TypeError(`${name}: ${m.type} listed twice`);
    types.add(m.type);
  }
  return Object.freeze({ name, version, messages: Object.freeze([...messages]) });
}

/**
 * What two sides agreed on: which protocols both speak, and which protocol each of our
 * request types belongs to.
 */
export class NegotiatedProtocols {
  readonly #peer: readonly ProtocolOffer[];
  readonly #shared = new Set<string>();
  /** Request/one-way type → name@version of the protocol that owns it. */
  readonly #owner = new Map<string, string>();

  /**
   * Match our protocols against the peer's offer (throws if two of ours claim one type).
   * @param ours The protocols this side offered.
   * @param theirs What the peer offered.
   */
  constructor(ours: readonly Protocol[], theirs: readonly ProtocolOffer[]) {
    this.#peer = theirs;
    for (const p of ours) {
      const key = `${p.name}@${p.version}`;
      for (const m of p.messages) {
        const other = this.#owner.get(m.type);
        if (other && other !== key) {
          throw new TypeError(`${m.type} belongs to both ${other} and ${key}`);
        }
        this.#owner.set(m.type, key);
      }
      if (theirs.some((t) => t.name === p.name && t.version === p.version)) this.#shared.add(key);
    }
  }

  /** What the peer offered. */
  get peerProtocols(): readonly ProtocolOffer[] {
    return this.#peer;
  }

  /** Whether both sides offered protocol `name` (at the same version). */
  supports(name: string): boolean {
    for (const key of this.#shared) if (key.slice(0, key.lastIndexOf("@")) === name) return true;
    return false;
  }

  /**
   * Throw {@link UnsupportedProtocolError} unless `type` belongs to a protocol both sides
   * offered.
   * @param type A request or one-way message type.
   * @param where Coordinates of an inbound envelope, to address the refusal.
   */
  check(type: string, where?: { envelopeId?: number; envelopeType?: string }): void {
    const owner = this.#owner.get(type);
    if (owner === undefined) {
      throw new UnsupportedProtocolError(
        `${type} belongs to no protocol this side offered`,
        where,
      );
    }
    if (!this.#shared.has(owner)) {
      throw new UnsupportedProtocolError(
        `${type} needs ${owner}, which the peer did not offer`,
        where,
      );
    }
  }
}
