/**
 * The reverse proxies whose forwarding headers the edge believes (`http.trustedProxies`): IP
 * addresses and CIDR ranges, IPv4 and IPv6. A request whose TCP peer is one of them is named by
 * the client the proxy relays (`client_address.ts`), read from the one forwarding header those
 * proxies write (`http.trustedProxyHeader`); any other peer's forwarding headers are ignored for
 * who it is, since a client can write them as it likes.
 *
 * Addresses are read by the peer layer's parser (`network/connection_limits.ts`: `ipv4`,
 * `ipv6Groups`), one parser for the node; an IPv4 address is matched as its IPv4-mapped IPv6
 * form, so `127.0.0.1` also trusts a dual-stack socket's `::ffff:127.0.0.1`.
 *
 * @example
 * ```ts
 * import { TrustedProxies } from "./trusted_proxies.ts";
 * const trusted = TrustedProxies.from(["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"]);
 * console.log(trusted.has("10.1.2.3"), trusted.has("::ffff:127.0.0.1")); // true true
 * console.log(trusted.has("192.0.2.1")); // false
 * ```
 *
 * @module
 */
import { ipv4, ipv6Groups } from "../network/connection_limits.ts";
import { DEFAULT_TRUSTED_PROXY_HEADER, type TrustedProxyHeader } from "./forwarded_for.ts";
import { EdgeError } from "./http_errors.ts";

/** A trusted proxy entry that is neither an IP address nor a CIDR range. */
export class TrustedProxyError extends EdgeError {
  /**
   * Refuse `entry`.
   *
   * @param entry The entry as written.
   */
  constructor(entry: string) {
    super("trusted_proxy_malformed", `http.trustedProxies: ${trustedProxyRefusal(entry)}`);
  }
}

/**
 * What a malformed `http.trustedProxies` entry is refused with, before the entry itself: the
 * configuration schema (`edge_config.ts`) says it after the key and before where it came from.
 */
export function trustedProxyRefusal(entry: string): string {
  return "expected an IP address or a CIDR range (127.0.0.1, 10.0.0.0/8, ::1, 2001:db8::/32), " +
    `got ${JSON.stringify(entry)}`;
}

/** Bits in an IPv6 address: every address is compared as one. */
const IPV6_BITS = 128;
/** An IPv4 address's place in IPv6 (`::ffff:0:0/96`): its prefix length is 96 more. */
const IPV4_MAPPED_BITS = 96;
/** Bits in one of the eight groups {@link ipv6Groups} gives. */
const GROUP_BITS = 16;

/** One trusted range: the first `bits` bits of `groups`. */
interface Range {
  readonly groups: readonly number[];
  readonly bits: number;
}

/** The eight groups of `host` (an IPv4 address as IPv4-mapped IPv6), or undefined. */
function groupsOf(host: string): number[] | undefined {
  const v4 = ipv4(host);
  if (v4 !== undefined) {
    const [a, b, c, d] = v4.split(".").map(Number);
    return [0, 0, 0, 0, 0, 0xffff, (a << 8) | b, (c << 8) | d];
  }
  return ipv6Groups(host.toLowerCase());
}

/** `entry` as a range, or undefined when it is not `ADDRESS` or `ADDRESS/LENGTH`. */
function parseRange(entry: string): Range | undefined {
  const [address, length, ...rest] = entry.split("/");
  if (rest.length > 0) return undefined;
  const groups = groupsOf(address);
  if (groups === undefined) return undefined;
  const isV4 = ipv4(address) !== undefined;
  const most = isV4 ? IPV6_BITS - IPV4_MAPPED_BITS : IPV6_BITS;
  if (length === undefined) return { groups, bits: IPV6_BITS };
  // Decimal digits only, as the node's whole-number flags read them: `/08` or `/0x8` is a typo.
  if (!/^(?:0|[1-9]\d{0,2})$/.test(length) || Number(length) > most) return undefined;
  return { groups, bits: Number(length) + (isV4 ? IPV4_MAPPED_BITS : 0) };
}

/** Whether the first `range.bits` bits of `groups` are the range's. */
function inRange(groups: readonly number[], range: Range): boolean {
  for (let i = 0, left = range.bits; left > 0; i++, left -= GROUP_BITS) {
    const mask = left >= GROUP_BITS ? 0xffff : (0xffff << (GROUP_BITS - left)) & 0xffff;
    if ((groups[i] & mask) !== (range.groups[i] & mask)) return false;
  }
  return true;
}

/**
 * The widest IPv4 range trusted without a warning: 10.0.0.0/8, the widest private range
 * operators list. A wider one (0.0.0.0/0 above all) holds addresses of the open internet, each of
 * which, reaching the node directly, names itself whatever client it likes.
 */
const WIDEST_QUIET_IPV4_BITS = 8;
/** The widest IPv6 range trusted without a warning: fc00::/7, all unique local addresses. */
const WIDEST_QUIET_IPV6_BITS = 7;

/**
 * Whether `entry`, an accepted entry, is wider than the private ranges operators list (a prefix
 * shorter than /8 for IPv4, /7 for IPv6: `0.0.0.0/0`, `::/0`), worth a warning at start. Not
 * refused: behind a cloud load balancer whose addresses are not known in advance, a node that
 * only the balancer can reach may trust them all, as nginx's `set_real_ip_from 0.0.0.0/0` does.
 */
export function isWideTrustedProxyEntry(entry: string): boolean {
  const range = parseRange(entry);
  if (range === undefined) return false;
  // `::ffff:0:0/96` written in IPv6 is every IPv4 address all the same.
  const ipv4Mapped = range.bits >= IPV4_MAPPED_BITS &&
    range.groups.slice(0, 6).every((group, i) => group === (i === 5 ? 0xffff : 0));
  return ipv4Mapped
    ? range.bits - IPV4_MAPPED_BITS < WIDEST_QUIET_IPV4_BITS
    : range.bits < WIDEST_QUIET_IPV6_BITS;
}

/**
 * Whether `entry` is an IP address or a CIDR range (`ADDRESS/LENGTH`, at most 32 for IPv4 and 128
 * for IPv6, decimal), as `http.trustedProxies` takes it. No brackets, ports or `%zone`s.
 */
export function isTrustedProxyEntry(entry: string): boolean {
  return parseRange(entry) !== undefined;
}

/** The set of trusted proxies: which peer addresses may name the client they relay. */
export class TrustedProxies {
  readonly #ranges: readonly Range[];
  /** The forwarding header these proxies write, the only one the node reads from them. */
  readonly header: TrustedProxyHeader;

  /**
   * The ranges of `entries`, whose proxies write `header` (by default `X-Forwarded-For`).
   * @throws {TrustedProxyError} for an entry that is not one.
   */
  static from(
    entries: readonly string[],
    header: TrustedProxyHeader = DEFAULT_TRUSTED_PROXY_HEADER,
  ): TrustedProxies {
    return new TrustedProxies(
      entries.map((entry) => {
        const range = parseRange(entry);
        if (range === undefined) throw new TrustedProxyError(entry);
        return range;
      }),
      header,
    );
  }

  private constructor(ranges: readonly Range[], header: TrustedProxyHeader) {
    this.#ranges = ranges;
    this.header = header;
  }

  /** Whether no proxy is trusted (the default: every forwarding header is ignored). */
  get empty(): boolean {
    return this.#ranges.length === 0;
  }

  /**
   * Whether `host`, a peer's address or one a forwarding header names (brackets and a `%zone`
   * allowed, as Deno and proxies write IPv6), lies in a trusted range. A name is never trusted.
   */
  has(host: string): boolean {
    if (this.#ranges.length === 0) return false;
    const bare = host.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
    const groups = groupsOf(bare);
    return groups !== undefined && this.#ranges.some((range) => inRange(groups, range));
  }
}

/** Nobody is trusted: the edge's default. */
export const NO_TRUSTED_PROXIES: TrustedProxies = TrustedProxies.from([]);
