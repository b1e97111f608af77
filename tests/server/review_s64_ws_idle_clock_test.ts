/**
 * Review at stop 64: the WebSocket API's idle cut-off (`http.clientIdleTimeoutMs`, a client
 * that leaves its replies unread over the high-water mark) runs on the clock and timers it is
 * given, as the SSE one does (`review_s64_sse_idle_clock_test.ts`), so a fake clock drives it.
 */
import { assert, assertEquals } from "./_assert.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { LOOPBACK_CLIENT } from "../../server/client_identity.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import {
  type SessionSocket,
  StreamSession,
  type StreamSessionOptions,
  WS_CLOSE,
  WS_HIGH_WATER_BYTES,
} from "../../server/stream_session.ts";

/** A socket whose client never reads: its send buffer is over the high-water mark from the start. */
class UnreadSocket implements SessionSocket {
  readyState: number = WebSocket.OPEN;
  bufferedAmount = WS_HIGH_WATER_BYTES + 1;
  sent: string[] = [];
  closedWith: { code?: number; reason?: string } | undefined;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  send(data: string): void {
    this.sent.push(data);
    this.bufferedAmount += data.length;
  }
  close(code?: number, reason?: string): void {
    this.readyState = WebSocket.CLOSED;
    this.closedWith = { code, reason };
  }
}

const IDLE_MS = 200;

Deno.test("review s64: a WebSocket client that leaves its replies unread is cut off (1008) when the injected clock passes http.clientIdleTimeoutMs, not before, with no real time waited", async () => {
  const timers = new ManualTimers();
  const stats = new EdgeStats();
  const socket = new UnreadSocket();
  const options: StreamSessionOptions = {
    maxMessageBytes: 1 << 20,
    idleTimeoutMs: IDLE_MS,
    client: LOOPBACK_CLIENT,
    stats,
    timers,
  };
  new StreamSession(
    socket,
    new InferenceGateway({ inference: {} as InferencePort }),
    options,
  );
  // One refusal, no job: only the session's watch of the buffer can end this client.
  socket.onmessage?.(new MessageEvent("message", { data: JSON.stringify({ type: "dance" }) }));
  assertEquals(socket.sent.length, 1);
  await timers.advance(IDLE_MS - 1);
  assertEquals(socket.readyState, WebSocket.OPEN, "cut before its deadline");
  await timers.advance(IDLE_MS);
  assertEquals(socket.closedWith?.code, WS_CLOSE.policyViolation);
  assert(
    socket.closedWith!.reason!.includes("http.clientIdleTimeoutMs"),
    socket.closedWith!.reason,
  );
  assertEquals(stats.idleTimeouts, 1);
  await timers.advance(IDLE_MS);
  assertEquals(timers.pending, 0, "the watch ended with the socket");
});
