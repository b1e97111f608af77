/**
 * A client without a key, told apart by where it connects from: its IPv4 address, or the /64 of
 * its IPv6 one (one host is given a whole /64 and may pick any address in it, so a client counted
 * per IPv6 address could be as many clients as it liked). The dashboard's allowances use it for
 * anonymous readers (`http.allowUnauthenticatedRemote`).
 *
 * @module
 */

const IPV6_GROUPS = 8;
const PREFIX_GROUPS = 4;

/**
 * The client `addr` names, as a key for per-client limits: `198.51.100.9`, `2001:db8:1:2::/64`
 * (an IPv4-mapped IPv6 address is its IPv4 one), `unknown` without a network address. Every
 * client behind one reverse proxy or NAT is one client.
 */
export function clientAddress(addr: Deno.Addr | undefined): string {
  if (addr === undefined || (addr.transport !== "tcp" && addr.transport !== "udp")) {
    return "unknown";
  }
  const host = addr.hostname.toLowerCase().replace(/%.*$/, ""); // no zone (`fe80::1%eth0`)
  if (!host.includes(":")) return host;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  if (mapped !== null) return mapped[1];
  return ipv6Prefix(host) ?? host;
}

/** The /64 of an IPv6 address in its shortest-groups form, or undefined if it does not parse. */
function ipv6Prefix(host: string): string | undefined {
  const halves = host.split("::");
  if (halves.length > 2) return undefined;
  const groupsOf = (part: string) => part === "" ? [] : part.split(":");
  const head = groupsOf(halves[0]);
  const tail = halves.length === 2 ? groupsOf(halves[1]) : [];
  // An embedded IPv4 tail (`64:ff9b::192.0.2.1`) is two groups; only the first four matter.
  const tailGroups = tail.length > 0 && tail[tail.length - 1].includes(".")
    ? tail.length + 1
    : tail.length;
  const missing = IPV6_GROUPS - head.length - tailGroups;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  const prefix = groups.slice(0, PREFIX_GROUPS);
  if (prefix.some((group) => !/^[0-9a-f]{1,4}$/.test(group))) return undefined;
  return `${prefix.map((group) => parseInt(group, 16).toString(16)).join(":")}::/64`;
}
