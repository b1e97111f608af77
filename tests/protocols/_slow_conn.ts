/**
 * A slow link for the slow-peer tests (`connection_slow_peer_test.ts`): the part of a `Deno.Conn`
 * (or, with `"tcp"`, a `Deno.TcpConn`) that `socketDuplex` and `tcpDuplex` use, on the manual
 * clock.
 */
import { encodeEnvelope, type Envelope } from "../../protocols/envelope.ts";
import type { ManualTimers } from "./_helpers.ts";

/**
 * Each write takes at most `bytesPerWrite` bytes after `writeMs` (a slow link whose kernel
 * buffer is full), until `stall()`; reads return what the test `push`es (the peer's frames).
 * `transport` "tcp" gives it a TCP socket's addresses (`tcpDuplex` reads them).
 */
export class SlowConn {
  readonly localAddr: Deno.Addr;
  readonly remoteAddr: Deno.Addr;
  /** Bytes the link took. */
  written = 0;
  #stalled = false;
  #closed = false;
  #inbox: Uint8Array[] = [];
  #wake: (() => void) | undefined;
  readonly #stuck: Array<(error: unknown) => void> = [];

  constructor(
    readonly timers: ManualTimers,
    readonly bytesPerWrite: number,
    readonly writeMs: number,
    transport: "unix" | "tcp" = "unix",
  ) {
    this.localAddr = transport === "tcp"
      ? { transport: "tcp", hostname: "127.0.0.1", port: 1 }
      : { transport: "unix", path: "" };
    this.remoteAddr = transport === "tcp"
      ? { transport: "tcp", hostname: "127.0.0.1", port: 2 }
      : { transport: "unix", path: "" };
  }

  setNoDelay(): void {}

  write(p: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.#closed) return reject(new Deno.errors.BadResource("closed"));
      this.timers.setTimeout(() => {
        if (this.#closed) return reject(new Deno.errors.BadResource("closed"));
        if (this.#stalled) return this.#stuck.push(reject);
        const n = Math.min(p.byteLength, this.bytesPerWrite);
        this.written += n;
        resolve(n);
      }, this.writeMs);
    });
  }

  async read(into: Uint8Array): Promise<number | null> {
    while (this.#inbox.length === 0) {
      if (this.#closed) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
    const head = this.#inbox[0];
    const n = Math.min(head.byteLength, into.byteLength);
    into.set(head.subarray(0, n));
    if (n === head.byteLength) this.#inbox.shift();
    else this.#inbox[0] = head.subarray(n);
    return n;
  }

  /** The peer sends `envelope` (one frame). */
  push(envelope: Envelope): void {
    const payload = encodeEnvelope(envelope);
    const frame = new Uint8Array(4 + payload.byteLength);
    new DataView(frame.buffer).setUint32(0, payload.byteLength);
    frame.set(payload, 4);
    this.#inbox.push(frame);
    this.#wake?.();
  }

  /** The link takes nothing more: writes hang until the conn closes. */
  stall(): void {
    this.#stalled = true;
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.#closed = true;
    for (const reject of this.#stuck.splice(0)) reject(new Deno.errors.BadResource("closed"));
    this.#wake?.();
  }
}
