// The address a swarm peer's connection comes from, as the swarm host (host.mjs) tells the node
// in each connection's header, for the node's per-address budgets (network/address_budget.ts):
// the IP its UDX stream sends to and hears from (udx-native's UDXStream.remoteHost, set when the
// stream connects and changed when hyperdht moves it to another path). Not always the peer's:
// this hyperdht (6.34) connects two peers through a blind relay (blind-relay) when either side
// asks for it (its relayThrough: this node never does, but follows a peer's request), both in
// its server and its connect path by opening the relay as `dht.connect(relayKey)`. A relayed
// stream is connected to the relay's address, on that relay connection's own UDP socket, until a
// holepunch moves it to the peer's. The relay's address would put every peer behind one relay
// into one group, so a relayed stream has no address here (the node counts it unaddressed, as
// every swarm peer was before), and nor has one whose address is not known.
//
// Told apart by what can be seen from here, not by hyperdht's internal flags: a stream whose UDP
// socket and remote host and port are those of another connection this DHT opened itself, to
// another key, is taken for relayed — a relay connection is one (measured on a local testnet,
// tests/network/swarm_peer_address_test.ts: the relayed stream's remote is the relay's DHT
// address, on the same socket as the relay connection). Two keys on one DHT socket that this node
// dialled also read so: their later connections go unaddressed, which a peer can have anyway by
// asking for a relay, and which is what every swarm peer had before.

/** What an IP address is written with (IPv4 dotted, IPv6 hex groups). */
const IP_TEXT = /^[0-9a-f.:]+$/i;
/** The longest address told (an IPv6 address with an IPv4 tail is 45 characters). */
export const MAX_ADDRESS_CHARS = 45;

/**
 * Watch the connections `dht` opens itself (Hyperswarm's and relays'), and return how to read
 * the address of one of its peer connections (a Noise stream): the IP, or "" when it is not
 * known or the stream is relayed (see above).
 */
export function peerAddresses(dht) {
  /** Connections the DHT opened itself, while open. */
  const opened = new Set();
  const connect = dht.connect.bind(dht);
  dht.connect = (...args) => {
    const stream = connect(...args);
    opened.add(stream);
    stream.once("close", () => opened.delete(stream));
    return stream;
  };
  return (socket) => {
    const raw = socket.rawStream;
    const host = raw?.remoteHost;
    if (typeof host !== "string" || !IP_TEXT.test(host) || host.length > MAX_ADDRESS_CHARS) {
      return "";
    }
    for (const other of opened) {
      const path = other.rawStream;
      if (other === socket || !path || path === raw) continue;
      if (other.remotePublicKey?.equals(socket.remotePublicKey)) continue; // the same peer's
      if (
        path.socket === raw.socket && path.remoteHost === host &&
        path.remotePort === raw.remotePort
      ) {
        return ""; // relayed (or a second key on one DHT socket: see above)
      }
    }
    return host;
  };
}
