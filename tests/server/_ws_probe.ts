/**
 * A raw WebSocket test client for `/v1/stream`: records every server message and lets a test
 * wait for the one it expects. Raw on purpose: the tests pin the wire protocol, not a library.
 *
 * @module
 */
import type { WsServerMessage } from "../../server/stream_protocol.ts";

/** A connected socket with its received messages. */
export class WsProbe {
  readonly socket: WebSocket;
  readonly messages: WsServerMessage[] = [];
  #waiters: (() => void)[] = [];
  readonly closed: Promise<void>;
  /** The close frame's code and reason, once closed. */
  closeEvent?: { code: number; reason: string };

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.onmessage = (event) => {
      this.messages.push(JSON.parse(event.data as string));
      for (const wake of this.#waiters.splice(0)) wake();
    };
    this.closed = new Promise((resolve) =>
      socket.addEventListener("close", (event) => {
        this.closeEvent = { code: event.code, reason: event.reason };
        resolve();
      })
    );
  }

  /** Open a socket to `url`, with extra handshake headers (Deno's WebSocket takes them). */
  static async open(url: string, headers?: Record<string, string>): Promise<WsProbe> {
    const socket = headers === undefined
      ? new WebSocket(url)
      // deno-lint-ignore no-explicit-any
      : new WebSocket(url, { headers } as any);
    const probe = new WsProbe(socket);
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
    return probe;
  }

  /** Send a message (JSON-encoded unless already a string). */
  send(message: unknown): void {
    this.socket.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** The first message matching `predicate`, waiting for it if needed. */
  async next(predicate: (m: WsServerMessage) => boolean): Promise<WsServerMessage> {
    while (true) {
      const found = this.messages.find(predicate);
      if (found) return found;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** The `done` or `error` that ends request `id`. */
  end(id: string): Promise<WsServerMessage> {
    return this.next((m) => (m.type === "done" || m.type === "error") && m.id === id);
  }

  /** Concatenated token text of request `id` so far. */
  text(id: string): string {
    return this.messages
      .filter((m) => m.type === "token" && m.id === id)
      .map((m) => (m as { text: string }).text)
      .join("");
  }

  /** Token messages of request `id` so far. */
  tokens(id: string): number {
    return this.messages.filter((m) => m.type === "token" && m.id === id).length;
  }

  /** Close and wait for the close to complete. */
  async close(): Promise<void> {
    this.socket.close();
    await this.closed;
  }
}
