/**
 * Review at stop 54 of the TCP transport's dial (`protocols/tcp_transport.ts`): a peer whose
 * address takes the SYN and never answers it (a full accept queue here, on 127.0.0.1; a host
 * that is down or a firewall that drops, on a network) held `connectTcp` for the system's own
 * SYN retries (about two minutes on Linux), with no deadline and no way to give up: a node's
 * dial loop to a static peer waited that long between tries, and went on after the node
 * stopped.
 */
import assert from "node:assert/strict";
import { CONNECT_TIMEOUT_MS, connectTcp } from "../../protocols/tcp_transport.ts";
import { PeerTimeoutError } from "../../protocols/protocol_errors.ts";
import { ManualTimers } from "./_helpers.ts";
import { settled } from "../network/_swarm_host_fixture.ts";

/**
 * A listener on 127.0.0.1 that accepts nothing, its accept queue filled: a connect to it is
 * neither accepted nor refused (the kernel drops its SYN). The filling connects are set up
 * one by one until one does not complete within 2 s (a loopback connect takes microseconds;
 * set-up, not the behaviour under test).
 */
async function unansweredAddress(): Promise<{ port: number; close(): Promise<void> }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const held: Deno.Conn[] = [];
  let stuck: Promise<unknown> | undefined;
  while (stuck === undefined && held.length < 20_000) {
    const connecting = Deno.connect({ hostname: "127.0.0.1", port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const conn = await Promise.race([
      connecting,
      new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), 2_000)),
    ]);
    clearTimeout(timer);
    if (conn === undefined) stuck = connecting.then((c) => c.close(), () => {});
    else held.push(conn);
  }
  return {
    port,
    async close() {
      listener.close(); // the SYNs still sent are refused now
      for (const conn of held) conn.close();
      await stuck;
    },
  };
}

Deno.test({
  name:
    "tcp review s54: a connect the peer never answers fails with peer_timeout at its deadline (CONNECT_TIMEOUT_MS by default), on the connection's clock",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const target = await unansweredAddress();
    try {
      const timers = new ManualTimers();
      const byDefault = connectTcp({ hostname: "127.0.0.1", port: target.port }, { timers });
      const short = connectTcp({ hostname: "127.0.0.1", port: target.port }, {
        timers,
        timeoutMs: 1_000,
      });
      const outcomes = [byDefault, short].map((p) => p.then(() => "connected", (error) => error));
      await timers.advance(1_000);
      const first = await settled(outcomes[1], "the 1 s connect", 5_000);
      assert.ok(first instanceof PeerTimeoutError, String(first));
      assert.equal(first.code, "peer_timeout");
      await timers.advance(CONNECT_TIMEOUT_MS - 1_000);
      const second = await settled(outcomes[0], "the default connect", 5_000);
      assert.ok(second instanceof PeerTimeoutError, String(second));
      assert.equal(timers.pending, 0, "no deadline left armed");
    } finally {
      await target.close();
    }
  },
});

Deno.test({
  name: "tcp review s54: a connect under way gives up when its signal is aborted, with the reason",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const target = await unansweredAddress();
    try {
      const timers = new ManualTimers();
      const stop = new AbortController();
      const connecting = connectTcp({ hostname: "127.0.0.1", port: target.port }, {
        timers,
        signal: stop.signal,
      }).then(() => "connected", (error) => error);
      const reason = new Error("the node stopped");
      stop.abort(reason);
      assert.equal(await settled(connecting, "the aborted connect", 5_000), reason);
      assert.equal(timers.pending, 0, "its deadline cleared");
      // Aborted before it started: refused at once.
      const late = await connectTcp({ hostname: "127.0.0.1", port: target.port }, {
        signal: stop.signal,
      }).then(() => "connected", (error) => error);
      assert.equal(late, reason);
    } finally {
      await target.close();
    }
  },
});

Deno.test("tcp review s54: a connect that is answered clears its deadline", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const timers = new ManualTimers();
  try {
    const accepted = listener.accept();
    const duplex = await connectTcp(
      { hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port },
      { timers },
    );
    assert.equal(timers.pending, 0);
    duplex.close();
    (await accepted).close();
  } finally {
    listener.close();
  }
});
