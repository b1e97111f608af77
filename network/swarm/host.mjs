// Veriflow's swarm host: runs Hyperswarm (which cannot load inside Deno) in Node.js and moves
// each peer connection's bytes to the Deno node over its own local connection (a Unix socket,
// or loopback TCP where the node could not make one): the node's bytes with backpressure
// (gather), the peer's as they come, since the transport cannot slow a peer down (forward). It
// makes no protocol decision: it joins and leaves the topics the node asks for and reports what
// happens. Every protocol decision stays in Deno.
//
// Started by network/swarm_host.ts as `node host.mjs`. Protocol, one JSON object per line:
//   stdin, first line:  { seed, dataPath | dataPort, token, bootstrap: ["host:port", …] | null,
//                         bind?, maxUnreadBytes?, maxUnreadTotalBytes?, maxConnections? }
//                       seed: the node's 32-byte ed25519 seed (hex) — its swarm key pair
//                       dataPath (a Unix socket file) or dataPort (127.0.0.1): where each peer
//                       connection is delivered; token: the 32-byte secret (hex) that proves
//                       to the node that the host sent it
//                       bootstrap null: the public DHT; bind "127.0.0.1": local testnet only
//                       maxUnreadBytes, maxUnreadTotalBytes: see MAX_UNREAD_BYTES
//                       maxConnections: see MAX_CONNECTIONS
//                       leaveGraceMs: see LEAVE_GRACE_MS
//                       dhtRetry?: { initialMs, maxMs }: see DHT_RETRY
//   stdin, then:        { op: "join", id?, topic, server, client } | { op: "leave", id?, topic }
//                         (id: the node's number for the request, echoed in its answer)
//                       | { op: "dial", key } | { op: "undial", key } (a peer's public key, hex:
//                         connect to it by its key and keep reconnecting, or stop; no answer)
//                       | { op: "ping" } (answered { ev: "pong" } at once: the node's check
//                         that this host still runs; one that does not answer is restarted)
//   stdout:             { ev: "ready", publicKey } (once the DHT's socket is bound)
//                       | { ev: "joined", id?, topic } | { ev: "left", id?, topic }
//                       | { ev: "error", id?, topic, op, message } (that op failed)
//                         (id: the request's, where it had one; a topic's ops are answered
//                         in the order they came)
//                       | { ev: "error", message } (anything else; before "ready", the host
//                         then exits with code 1)
//                       | { ev: "warning", message } (after "ready": no DHT node answered at
//                         the bootstrap, so no peer will be found until one does; asked again
//                         on a backoff meanwhile, see watchDht)
//                       | { ev: "recovered", message } (after a warning: a DHT node answered;
//                         every joined topic is looked up and announced again)
//   per peer:           a connection to dataPath or 127.0.0.1:dataPort that starts with
//                       token (32) ‖ remote public key (32) ‖ initiator (1) ‖ address length (1)
//                       ‖ address (that many bytes, ASCII: the IP the peer's UDP stream comes
//                       from; length 0 where it is not known or the stream is relayed: see
//                       peer_address.mjs), then the bytes.
// It exits when stdin closes (the node stopped, or died), leaving the swarm cleanly. While its
// stdin is open it ignores SIGINT, SIGHUP and SIGTERM: a terminal's Ctrl-C or hangup, or a
// service manager's stop sent to the node's whole process group, are meant for the node, which
// drains and then closes stdin.
import { createConnection } from "node:net";
import { createInterface } from "node:readline";
import Hyperswarm from "hyperswarm";
import DHT from "hyperdht";
import { peerAddresses } from "./peer_address.mjs";

const lines = createInterface({ input: process.stdin });
const send = (event) => process.stdout.write(JSON.stringify(event) + "\n");
// An error's message, cut: the node cuts every line from this host at 4 KiB, and an event cut
// there no longer parses (a join's error would then never reach the join waiting for it).
const MAX_ERROR_CHARS = 1_000;
const errorText = (error) => String(error && error.message).slice(0, MAX_ERROR_CHARS);
let swarm = null;
let config = null;
/** A peer connection's address for its header, "" for none (see peer_address.mjs). */
let remoteHostOf = () => "";
/** start()'s promise once the first line came: every op waits for it. */
let started = null;

function parseBootstrap(list) {
  return list.map((entry) => {
    const at = entry.lastIndexOf(":");
    return { host: entry.slice(0, at), port: Number(entry.slice(at + 1)) };
  });
}

async function start(cfg) {
  config = cfg;
  const keyPair = DHT.keyPair(Buffer.from(cfg.seed, "hex"));
  const dhtOptions = cfg.bootstrap ? { bootstrap: parseBootstrap(cfg.bootstrap) } : {};
  // A local testnet: every node is reachable on the bound address, so say so. Left to detect
  // it, two ephemeral nodes on 127.0.0.1 both believe they are firewalled and the responder
  // side of a holepunched connection is often never told (measured: 1 in 4 connections).
  if (cfg.bind) Object.assign(dhtOptions, { host: cfg.bind, ephemeral: true, firewalled: false });
  const dht = new DHT({ ...dhtOptions, keyPair });
  remoteHostOf = peerAddresses(dht);
  // Every connection a peer makes to this node is watched from the moment its handshake is done
  // (see holdBack), before Hyperswarm's own handler, which may hold it back for a while.
  const createServer = dht.createServer.bind(dht);
  dht.createServer = (opts, onconnection) => {
    const server = createServer(opts);
    server.on("connection", holdBack);
    if (onconnection) server.on("connection", onconnection);
    return server;
  };
  swarm = new Hyperswarm({ dht, keyPair });
  countOwnConnectionsOnly(swarm);
  swarm.on("connection", deliver);
  // The DHT's UDP socket, bound (a local bind, no network round trip): an address that cannot
  // be bound fails here, and the node's start fails with the reason instead of every join.
  await dht.bind();
  send({ ev: "ready", publicKey: keyPair.publicKey.toString("hex") });
  void watchDht(dht, cfg);
}

// How often the host asks its bootstrap again while it knows no DHT node: from initialMs,
// doubling up to maxMs (config.dhtRetry overrides it). A node started before its network was up
// (a service at boot, a laptop offline, a testnet restarted) asked once: dht-rpc's own refresh
// comes every 64 ticks of 5 s, and the topics' lookups had all run against an empty routing
// table, so two such nodes had still not met 11.5 min after the DHT answered (review s78,
// finding 3). A lookup against an unanswered bootstrap costs a few UDP packets; 30 s at most
// keeps a node that comes online waiting no longer than that for its peers.
const DHT_RETRY = { initialMs: 2_000, maxMs: 30_000 };

/** Resolves after `ms`, without keeping the process alive (stdin does). */
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());

// While the routing table is empty, look this node's own id up on the backoff (a lookup with no
// node known starts from the bootstrap nodes), and once a DHT node answers look every joined
// topic up again. A bootstrap nobody answers at (a testnet that exited, a typo, no network) fails
// nothing, joins still "succeed", and the node would wait for peers that never come: the node is
// told (warning), and told again once one answers (recovered). Checked every maxMs while nodes
// are known, so a DHT that goes away and comes back is caught the same way.
async function watchDht(dht, cfg) {
  const retry = cfg.dhtRetry ?? DHT_RETRY;
  await dht.fullyBootstrapped().catch(() => {});
  let unreachable = false;
  let delay = retry.initialMs;
  while (!dht.destroyed) {
    const known = dht.toArray({ limit: 1 }).length > 0;
    if (!known && !unreachable) {
      unreachable = true;
      send({ ev: "warning", message: `no DHT node answered at ${bootstrapName(cfg)}` });
    } else if (known && unreachable) {
      unreachable = false;
      delay = retry.initialMs;
      send({ ev: "recovered", message: `a DHT node answered at ${bootstrapName(cfg)}` });
      refreshJoined();
    }
    await pause(known ? retry.maxMs : delay);
    if (known || dht.destroyed) continue;
    delay = Math.min(retry.maxMs, delay * 2);
    try {
      await dht.findNode(dht.table.id).finished();
    } catch {
      // nobody answered (or the host is stopping): the next round asks again
    }
  }
}

// Hyperswarm connects to the peers its lookups find only while its connections are fewer than
// maxPeers (64; a share of it while peers are dialled by key), and it counted those peers made to
// it too: strangers (keys are free) holding 64 connections to this node, well within the node's
// own bound of 256, stopped it connecting to any peer on its topics, for as long as they held
// them (a review at stop 51). What peers open here is bounded apart (MAX_CONNECTIONS, and the
// node's own bounds), so Hyperswarm's rule, its share for dialled peers included, is applied to
// the connections this node opens only.
function countOwnConnectionsOnly(swarm) {
  const withinMaxPeers = swarm._withinMaxPeers;
  if (typeof withinMaxPeers !== "function") return; // another Hyperswarm: its own rule stands
  swarm._withinMaxPeers = function () {
    const own = { size: this._clientConnections };
    return withinMaxPeers.call(Object.assign(Object.create(this), { _allConnections: own }));
  };
}

function bootstrapName(cfg) {
  if (!cfg.bootstrap) return "the public DHT's bootstrap";
  return cfg.bootstrap.length > 0
    ? `the bootstrap ${cfg.bootstrap.join(", ")}`
    : "(no bootstrap given)";
}

// What the host holds of one peer connection's incoming bytes while the node does not read
// them, before it closes that connection. The swarm's transport (a UDX stream) does not slow a
// sender down for a slow reader: it acknowledges every packet and pushes it into its readable
// buffer whatever that buffer holds, so pausing it when the node stops reading would stop
// nothing, and a peer could fill the host's memory. Counted: the UDX stream's readable buffer,
// the Noise stream's (decrypted, not yet handed on), and what waits in the link socket to the
// node (see forward). A transfer to a node that reads keeps far less there (measured: at most
// 1.1 MiB, sampled every 100 ms, through three 256 MiB transfers between two hosts on one
// machine, bench/swarm_bench.ts).
const MAX_UNREAD_BYTES = 32 * 1024 * 1024;
// What all connections together may hold so: past it, the connections holding the most are
// closed until the rest fit. Without it, peers with fresh keys (free to make) could each hold
// just under the per-connection limit: 100 of them about 3 GiB (a review at stop 34).
const MAX_UNREAD_TOTAL_BYTES = 128 * 1024 * 1024;
const watched = new Set();
/**
 * Connections peers made to this node that Hyperswarm has not handed on (yet), by stream: one
 * from a peer that already has a connection open waits until the older one closes (see
 * forward), and what its peer sends meanwhile is held in the host, read by nobody. Counted like
 * the rest: a peer that kept its first connection open with a byte now and then made the host
 * hold all its second one sent (a review at stop 45: 96 MiB, counted by no limit).
 */
const undelivered = new Map();
let checkScheduled = false;

function queuedBytes(socket, local) {
  const raw = socket.rawStream;
  return (raw?._readableState?.buffered ?? 0) + (socket._readableState?.buffered ?? 0) +
    (local?.writableLength ?? 0);
}

function checkUnread() {
  const cap = config.maxUnreadBytes ?? MAX_UNREAD_BYTES;
  const totalCap = config.maxUnreadTotalBytes ?? MAX_UNREAD_TOTAL_BYTES;
  const held = [];
  let total = 0;
  for (const entry of [...watched, ...undelivered.values()]) {
    const queued = queuedBytes(entry.socket, entry.local);
    if (queued > cap) {
      const where = entry.local ? "unread by the node" : "held, not handed on yet";
      drop(entry, `${mib(queued)} MiB ${where}, over the ${mib(cap)} MiB limit`);
    } else if (queued > 0) {
      held.push({ entry, queued });
      total += queued;
    }
  }
  if (total > totalCap) {
    held.sort((a, b) => b.queued - a.queued);
    for (const { entry, queued } of held) {
      if (total <= totalCap) break;
      drop(
        entry,
        `${mib(queued)} MiB unread by the node, the most of all connections, which held ` +
          `${mib(total)} MiB together, over the ${mib(totalCap)} MiB limit`,
      );
      total -= queued;
    }
  }
}

const mib = (bytes) => (bytes / (1024 * 1024)).toFixed(1);

function drop(entry, why) {
  watched.delete(entry);
  undelivered.delete(entry.socket);
  process.stderr.write(`peer ${entry.key.slice(0, 16)}: ${why}: connection closed\n`);
  entry.socket.destroy();
  entry.local?.destroy();
}

function watch(socket, local) {
  undelivered.delete(socket);
  const entry = { socket, local, key: socket.remotePublicKey.toString("hex") };
  watched.add(entry);
  // Until the link to the node closes: what a peer sent before it closed still waits there.
  local.on("close", () => watched.delete(entry));
  countArrivals(socket);
}

/** A connection a peer made, not handed on yet: watched until it is (or closes). */
function holdBack(socket) {
  socket.on("error", () => {});
  // Counted with those handed on: Hyperswarm holds back every further connection of a peer
  // whose first stays open, however many it makes.
  if (refused(socket, watched.size + undelivered.size)) return;
  undelivered.set(socket, { socket, local: null, key: socket.remotePublicKey.toString("hex") });
  socket.once("close", () => undelivered.delete(socket));
  countArrivals(socket);
}

// The unread bytes are checked once after each turn of the event loop in which a peer's bytes
// came in: the limits hold to within what one turn brings. Checked every 100 ms instead, they
// were passed by whatever came in between: under load, 16.4 MiB held against 8 MiB plus the
// link sockets' 6 MiB (CI at stop 71). Every byte from a peer comes through its UDX stream's
// push, which lands it in a buffer counted by queuedBytes.
const arrivalsCounted = new WeakSet();

function countArrivals(socket) {
  const raw = socket.rawStream;
  if (!raw || arrivalsCounted.has(raw)) return;
  arrivalsCounted.add(raw);
  const push = raw.push;
  raw.push = function (data) {
    const more = push.call(this, data);
    if (!checkScheduled) {
      checkScheduled = true;
      setImmediate(() => {
        checkScheduled = false;
        checkUnread();
      });
    }
    return more;
  };
}

// How many peer connections the host hands on at once (until their link closes), with those it
// holds not handed on yet (see holdBack); past it, a new one a peer made is closed as it arrives
// (one this node made is not: see deliver). Hyperswarm
// bounds only the connections it makes (maxPeers):
// those peers make to it are taken however many come, and keys are free, so one remote peer
// opened as many as it liked, each a link socket and a handshake in the node (a review at stop
// 37). Above the node's own bound on open connections (256, network/connection_limits.ts), so
// that the node, which knows which peers it wants, decides first.
const MAX_CONNECTIONS = 512;

/** Close `socket` if `open` connections are the most there may be; says whether it did. */
function refused(socket, open) {
  if (open < (config.maxConnections ?? MAX_CONNECTIONS)) return false;
  process.stderr.write(
    `peer ${socket.remotePublicKey.toString("hex").slice(0, 16)}: ${open} ` +
      `connections open, the most there may be: connection refused\n`,
  );
  socket.destroy();
  return true;
}

// Hand one authenticated peer connection (a Noise stream) to the node over the link.
function deliver(socket, info) {
  socket.on("error", () => {});
  if (socket.destroying) return; // refused already (holdBack)
  // One held back is counted already (holdBack). One this node made (a topic lookup's, a dial
  // by key's) is its own choice, bounded by Hyperswarm's maxPeers and the node's dials: refused
  // here too, strangers holding the bound kept the node from the peers it wanted, a worker it
  // dialled for a challenge's proof included (a review at stop 52).
  if (
    !undelivered.has(socket) && !socket.isInitiator &&
    refused(socket, watched.size + undelivered.size)
  ) return;
  const where = config.dataPath
    ? { path: config.dataPath }
    : { host: "127.0.0.1", port: config.dataPort };
  const local = gather(where, socket);
  // Loopback TCP: a token frame goes out at once, not after Nagle's wait for an ACK.
  if (!config.dataPath) local.setNoDelay(true);
  local.on("error", () => socket.destroy());
  const address = Buffer.from(remoteHostOf(socket), "latin1");
  const header = Buffer.alloc(66 + address.length);
  Buffer.from(config.token, "hex").copy(header, 0);
  socket.remotePublicKey.copy(header, 32);
  header[64] = socket.isInitiator ? 1 : 0;
  header[65] = address.length;
  address.copy(header, 66);
  local.write(header);
  forward(socket, local);
  watch(socket, local);
  void info;
}

/** How long a connection Hyperswarm replaced may go without a byte before it is destroyed. */
const DUPLICATE_IDLE_MS = 1_000;
/** How long a TCP link stays open after the peer's stream closed and its last byte went out. */
const TCP_LINK_LINGER_MS = 2_000;

// The peer's bytes into the link as they come, then its end (FIN) after them. Not a
// stream.pipeline: when a peer connects again while its old connection is still open,
// Hyperswarm keeps the new one and destroys the old (it takes it for a reconnect), and a
// destroyed stream drops what it has received and not handed on. A peer that half-closed, had
// everything it sent acknowledged and closed makes its Hyperswarm connect again at once (the
// topic is still joined), so a node that was slow to read lost the tail (the transfer test:
// 80–330 KiB of 5 MiB in 1 run of 6 under load; ~4.8 MiB in every run once its reader waits
// 500 ms). Pausing the peer's stream would not slow the peer down anyway (see
// MAX_UNREAD_BYTES), so its bytes wait in the link's write queue instead, which outlives the
// peer's stream. Every byte the peer's stream hands on goes to the node, in order, whatever ends
// the stream (what Hyperswarm's destroy finds still inside the stream, within the same tick, is
// lost with it).
function forward(socket, local) {
  let peerEnded = false;
  socket.on("data", (bytes) => {
    if (!local.destroyed) local.write(bytes);
  });
  // Hyperswarm destroys a connection when the same peer connects again (it takes the new one
  // for a reconnect), and a peer that closes reconnects at once: its Noise stream closes when
  // its side is done, before its UDX stream has delivered the bytes still in flight, so the old
  // connection can be destroyed here with the peer's last bytes on their way (the transfer test
  // lost 40–360 KiB of 5 MiB in 1 run of 5 under load). The old connection is let finish
  // instead: destroyed once the peer's end has come (Hyperswarm takes the new one when the old
  // one closes), or once nothing has come on it for DUPLICATE_IDLE_MS (a peer that restarted
  // left it dead: its new connection waits that long, no more). Once: a peer that connects yet
  // again meanwhile is not finishing this one (its Hyperswarm holds one connection to this node),
  // and it is destroyed at once. Let finish again and again, a peer that kept it open with a
  // byte now and then connected without end, and the host kept each of those connections (in
  // Hyperswarm's wait for this one to close) and a timer and listener on this one for each
  // (a review at stop 47: its memory grew ~75 MiB a 2,000 connections, for good).
  const destroy = socket.destroy;
  let replaced = false;
  socket.destroy = function (error) {
    if (
      error?.message !== "Duplicate connection" || peerEnded || socket.destroying || replaced
    ) {
      return destroy.call(this, error);
    }
    replaced = true;
    const finish = () => destroy.call(socket, error);
    const idle = setTimeout(finish, DUPLICATE_IDLE_MS);
    socket.on("data", () => idle.refresh());
    socket.once("end", () => {
      clearTimeout(idle);
      setImmediate(finish); // after the end has reached the link
    });
    return socket;
  };
  const endLink = () => {
    if (!local.destroyed && !local.writableEnded) local.end();
  };
  socket.on("end", () => {
    peerEnded = true;
    endLink();
  });
  socket.on("close", () => {
    endLink();
    // What the node still writes has nowhere to go: read and dropped (gather) until the link
    // closes, which makes the node's writes fail. A Unix link closes once the peer's last byte
    // is in the node's socket (what the node has not read stays readable there). Closing a TCP
    // link with bytes of the node's unread resets it, and a reset throws away what the node's
    // kernel had not taken yet: it closes after a grace period.
    local.resume();
    const close = () => {
      if (config.dataPath) local.destroy();
      else setTimeout(() => local.destroy(), TCP_LINK_LINGER_MS).unref();
    };
    if (local.writableFinished) close();
    else local.once("finish", close);
  });
  // The node closed the link (or it broke) while the peer may still send: nobody would read it.
  local.on("close", () => {
    if (!peerEnded) socket.destroy();
  });
}

// The link's bytes into the swarm, gathered: during a bulk transfer several reads arrive in one
// turn of the event loop, and each written on its own would be one encrypted message. Gathered
// until the turn ends (setImmediate: no timer, so a lone token frame leaves in the same turn),
// up to GATHER_MAX_BYTES, the reads go out as one message: fewer messages for both hosts to
// seal and open, and larger writes into the receiving node, which then wakes up less often.
const GATHER_MAX_BYTES = 256 * 1024;
// Each read lands in an arena right after the bytes already gathered (Node's `onread` buffer),
// and a message is a view of the arena: no buffer per read, no copy to join them, and reads of
// up to 256 KiB instead of Node's 64 KiB (a Unix socket holds about 200 KiB). A view stays
// valid while Hyperswarm holds it: a full arena is replaced, never written again. Measured on
// the link alone (1 GiB in 64 KiB writes, medians of five): 0.42 ms of the host's CPU per MiB
// against 0.62 for 'data' events joined with Buffer.concat.
const ARENA_BYTES = 1024 * 1024;
/** A read given less room than this is not worth its syscall: the message goes out first. */
const MIN_READ_BYTES = 64 * 1024;

// Connect to the node (`where`) and move what it writes into `socket` with backpressure; the
// node's end (FIN) ends the peer stream's writable side only, a link closed without it destroys
// the peer stream (forward takes the other direction). Returns the connection.
function gather(where, socket) {
  let arena = Buffer.allocUnsafe(ARENA_BYTES);
  let start = 0; // gathered, not yet sent: arena[start, end)
  let end = 0;
  let scheduled = false;
  let ended = false;
  let local = null;
  const flush = () => {
    scheduled = false;
    if (end === start) return;
    const message = arena.subarray(start, end);
    start = end;
    if (socket.destroying) return; // the peer's stream is gone (see forward)
    if (socket.write(message) === false) {
      local.pause();
      socket.once("drain", () => local.resume());
    }
  };
  // Where the next read lands: Node asks before the first read and after each one.
  const nextRead = () => {
    if (start + GATHER_MAX_BYTES - end < MIN_READ_BYTES) flush();
    if (ARENA_BYTES - end < MIN_READ_BYTES) {
      flush();
      arena = Buffer.allocUnsafe(ARENA_BYTES);
      start = end = 0;
    }
    return arena.subarray(end, Math.min(ARENA_BYTES, start + GATHER_MAX_BYTES));
  };
  const onRead = (bytes) => {
    end += bytes;
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  // allowHalfOpen: the node's FIN ends this direction only. Without it Node ends the link's
  // other half too, and the peer's bytes still on their way to the node are cut off (the test
  // lost 300–700 KiB of 5 MiB that way).
  local = createConnection({
    ...where,
    allowHalfOpen: true,
    onread: { buffer: nextRead, callback: onRead },
  });
  local.on("end", () => {
    ended = true;
    flush();
    socket.end();
  });
  local.on("close", () => {
    if (!ended) socket.destroy();
  });
  return local;
}

// Look a joined topic up again soon after joining, then less and less often (Hyperswarm's own
// next lookup is 10 minutes away): two nodes that join at the same moment each look the topic
// up before the other has announced, and would otherwise not meet for those 10 minutes.
const EARLY_REFRESHES_MS = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000];
const refreshTimers = new Map();

function refreshEarly(topic, session, options) {
  const timers = EARLY_REFRESHES_MS.map((ms) =>
    setTimeout(() => session.refresh(options).catch(() => {}), ms)
  );
  refreshTimers.set(topic, timers);
}

function stopRefreshing(topic) {
  for (const timer of refreshTimers.get(topic) ?? []) clearTimeout(timer);
  refreshTimers.delete(topic);
}

// A DHT node answered at last: every topic joined meanwhile was announced and looked up against
// an empty routing table, found nobody and would not be looked up again for 10 minutes. Looked
// up now, then on the early schedule: the peers that recover at the same moment each look up
// before the other has announced.
function refreshJoined() {
  // This node's own record too, where a peer that found it on a topic looks for it to connect:
  // its announcer stored it on nobody either, and stores it again only minutes later (the peers
  // found each other on the topic, and every connection failed).
  swarm.server?.refresh();
  for (const [topic, { session, options }] of joined) {
    stopRefreshing(topic);
    session.refresh(options).catch(() => {});
    refreshEarly(topic, session, options);
  }
}

// Connect to a peer by its key through the DHT, whatever topics it is on, and keep reconnecting
// while dialled (Hyperswarm's explicit peers); its connection is delivered like any other.
// Undialling stops the attempts and leaves an open connection alone.
function dial(message) {
  if (typeof message.key !== "string" || !/^[0-9a-f]{64}$/.test(message.key)) {
    throw new Error("a peer key is 32 bytes (64 hex digits)");
  }
  const key = Buffer.from(message.key, "hex");
  if (message.op === "dial") swarm.joinPeer(key);
  else swarm.leavePeer(key);
}

/** The topics joined (hex), each with its Hyperswarm session and the options it was joined with. */
const joined = new Map();

async function handle(message) {
  if (message.op === "dial" || message.op === "undial") return dial(message);
  if (typeof message.topic !== "string" || !/^[0-9a-f]{64}$/.test(message.topic)) {
    throw new Error("a topic is 32 bytes (64 hex digits)");
  }
  const topic = Buffer.from(message.topic, "hex");
  if (message.op === "join") {
    const options = { server: message.server !== false, client: message.client !== false };
    stopRefreshing(message.topic);
    // Joined already: Hyperswarm would add a session beside the old one, which goes on
    // announcing, so a join as client only kept the topic announced. Left first, then joined
    // with the options asked now.
    if (joined.delete(message.topic)) await swarm.leave(topic);
    const discovery = swarm.join(topic, options);
    try {
      await discovery.flushed();
    } catch (error) {
      // Not joined, as the node is told: no announcing or looking up in the background.
      await swarm.leave(topic).catch(() => {});
      throw error;
    }
    joined.set(message.topic, { session: discovery, options });
    refreshEarly(message.topic, discovery, options);
    send({ ev: "joined", id: message.id, topic: message.topic });
  } else if (message.op === "leave") {
    stopRefreshing(message.topic);
    joined.delete(message.topic);
    await swarm.leave(topic);
    send({ ev: "left", id: message.id, topic: message.topic });
  } else {
    throw new Error("unknown op");
  }
}

lines.on("line", (line) => {
  let message;
  try {
    message = JSON.parse(line);
  } catch {
    // Not echoed: the first line (the config) carries the seed.
    send({ ev: "error", message: `a line of ${line.length} characters that is not JSON` });
    return;
  }
  if (started === null) {
    started = start(message).catch((error) => {
      send({ ev: "error", message: errorText(error) });
      process.exit(1);
    });
    return;
  }
  // The node's liveness check: answered at once, not behind any topic's ops (a join can take
  // seconds). A host whose event loop is stuck does not answer, and is restarted.
  if (message.op === "ping") {
    send({ ev: "pong" });
    return;
  }
  // After start (the node sends its first op once "ready" came, but it need not), and after the
  // ops on the same topic (or peer key) that came before it.
  inOrder(message.topic ?? message.key, () => handle(message)).catch((error) =>
    send({
      ev: "error",
      id: message.id,
      topic: message.topic,
      op: message.op,
      message: errorText(error),
    })
  );
});

// Each topic's ops one after another, in the order they came: a join of a topic already joined
// leaves it first, and a leave sent after that join used to finish during it — the node was
// told "left" while the join went on to announce the topic again.
const queues = new Map();

function inOrder(name, run) {
  const next = (queues.get(name) ?? started).then(run);
  const tail = next.catch(() => {});
  queues.set(name, tail);
  tail.then(() => {
    if (queues.get(name) === tail) queues.delete(name);
  });
  return next;
}

// How long stop() lets Hyperswarm leave the swarm (unannounce every topic, close the DHT) before
// the host exits anyway (config.leaveGraceMs overrides it). With no DHT node reachable (the
// network gone, the bootstrap nodes stopped) the leave waits on requests that only time out:
// the node killed the host after 5 s and its own stop was abandoned at that moment. Below
// that kill, so the host always exits on its own.
const LEAVE_GRACE_MS = 3_000;

async function stop() {
  for (const topic of [...refreshTimers.keys()]) stopRefreshing(topic);
  try {
    if (swarm) {
      const graceMs = config?.leaveGraceMs ?? LEAVE_GRACE_MS;
      let timer;
      const expired = new Promise((resolve) => timer = setTimeout(resolve, graceMs, true));
      const left = swarm.destroy().then(() => false, () => false);
      if (await Promise.race([left, expired])) {
        process.stderr.write(
          `could not leave the swarm within ${graceMs} ms (no DHT node answered): ` +
            `exiting without unannouncing\n`,
        );
      }
      clearTimeout(timer);
    }
  } finally {
    process.exit(0);
  }
}
/** Whether the node closed stdin: the host is leaving the swarm (stop). */
let stdinClosed = false;
lines.on("close", () => {
  stdinClosed = true;
  stop();
});
// systemd's default stop (KillMode=control-group), like `kill -TERM -PGID`, sends SIGTERM to every
// process of the node's group at once: the host left the swarm at the start of the node's drain,
// cutting the swarm peers of the jobs the drain was waiting for, and the node took it for a crash
// and started a new host mid-shutdown (review s78, finding 1). The node closes stdin once it is
// done with the swarm, and a node killed outright closes it too. Once stdin is closed the host is
// leaving already: a SIGTERM then means "now".
process.on("SIGTERM", () => {
  if (stdinClosed) process.exit(0);
});
// Ctrl-C in a terminal reaches the whole foreground process group, this host with its node.
// The node stops gracefully and closes our stdin when it is done with the swarm; dying here
// first made it log a crash and start a new host (joining every topic again) mid-shutdown.
process.on("SIGINT", () => {});
// The same for a closed terminal or SSH session: the node drains on SIGHUP too
// (node/stop_signals.ts), and the host died of it and was restarted mid-drain (review s72).
process.on("SIGHUP", () => {});
