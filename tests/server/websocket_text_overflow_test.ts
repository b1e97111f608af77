/**
 * A text message past V8's longest string (about 512 MiB), sent in fragments (Deno bounds only
 * frames), made Deno's WebSocket event loop reject with nothing to catch it: the node exited
 * (`server/websocket_text_overflow.ts`, `tmp/s76/wsfix/report.md`). Now the node stays up, says so
 * in its log, and ends that socket at its next close, its place given back although Deno never
 * fires its `onclose`. Heavy on purpose (512 MiB over loopback, about 1.2 GB at the peak): it is the
 * attack itself. Raw TCP client; the node's clock is injected.
 */
import assert from "node:assert/strict";
import { STREAM_SOCKET_IDLE_MS } from "../../server/stream_session.ts";
import { DROPPED_CLOSE_WAIT_MS, WS_CLOSE_GRACE_MS } from "../../server/websocket_drop.ts";
import { MEMORY_CHECK_MS } from "../../server/websocket_memory_guard.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { startTestNode } from "./_fixtures.ts";
import { closeCodeOf, dropAll, type RawSocket, rawUpgrade, writeAll } from "./_raw_ws.ts";
import { connectionEnd } from "./_upgrade_server.ts";
import { WsProbe } from "./_ws_probe.ts";

/** Past V8's longest string (2^29 − 24 UTF-16 code units): 2^29 one-byte characters. */
const MESSAGE_MIB = 512;
/** Each fragment: Deno's per-frame limit is 64 MiB, so fragments are how a client passes it. */
const FRAGMENT_BYTES = 1 << 20;
/**
 * Liveness guard for Deno to read 512 MiB and fail on it: about 10 s on a loaded two-core machine
 * (measured); generous so a slow run fails only if it never happens.
 */
const OVERFLOW_GIVE_UP_MS = 120_000;

/** A masked (all-zero key) client frame header announcing `length` bytes. */
function fragmentHead(opcode: number, fin: boolean, length: number): Uint8Array {
  const head = new Uint8Array(14);
  head[0] = (fin ? 0x80 : 0) | opcode;
  head[1] = 0x80 | 127;
  new DataView(head.buffer).setBigUint64(2, BigInt(length));
  return head; // bytes 10..13: the zero mask
}

Deno.test("WS text overflow: a 512 MiB text message in fragments does not stop the node; it says so in its log, and the socket is ended at its next close with its place given back", async () => {
  const timers = new FakeTimers();
  const lines: string[] = [];
  const node = await startTestNode({ timers, log: (line) => lines.push(line) });
  const open: RawSocket[] = [];
  let probe: WsProbe | undefined;
  try {
    const attacker = await rawUpgrade(node.url, "/v1/stream");
    open.push(attacker);
    assert.equal(attacker.status, 101);
    const payload = new Uint8Array(FRAGMENT_BYTES).fill(0x78); // "x": valid UTF-8
    for (let i = 0; i < MESSAGE_MIB; i++) {
      await writeAll(
        attacker.conn,
        fragmentHead(i === 0 ? 0x1 : 0x0, i === MESSAGE_MIB - 1, payload.length),
      );
      await writeAll(attacker.conn, payload);
    }
    await eventually(
      () => lines.some((line) => line.includes("past V8's longest string")),
      "the node's line about the message",
      { timeoutMs: OVERFLOW_GIVE_UP_MS, everyMs: 50 },
    );

    // The node is up and streams.
    probe = await WsProbe.open(node.wsUrl);
    probe.send({ type: "infer", id: "a", prompt: "hello", max_tokens: 2 });
    assert.equal((await probe.end("a")).type, "done");
    await probe.close();

    // Its next close (the idle one) goes out, it is dropped after the grace, and since Deno never
    // fires its `onclose`, the node fires one: the socket is forgotten (no socket left to guard).
    timers.fireFor(STREAM_SOCKET_IDLE_MS);
    assert.equal(await closeCodeOf(attacker), 1000);
    timers.fireFor(WS_CLOSE_GRACE_MS);
    await connectionEnd(attacker);
    assert.ok(
      [...timers.armed.values()].some((t) => t.ms === MEMORY_CHECK_MS),
      "still tracked: its onclose has not come",
    );
    timers.fireFor(DROPPED_CLOSE_WAIT_MS);
    await eventually(
      () => ![...timers.armed.values()].some((t) => t.ms === MEMORY_CHECK_MS),
      "the socket's end (its places given back, the guard tracking nothing)",
    );
  } finally {
    dropAll(open);
    await node.close();
  }
});
