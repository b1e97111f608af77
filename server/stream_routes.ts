/**
 * The WebSocket streaming API, `GET /v1/stream` (messages in `stream_protocol.ts`).
 *
 * One socket carries any number of concurrent jobs, each under the client's own `id`. A
 * `cancel` or the socket closing cancels the socket's jobs, which stops their computation
 * within one step. Tokens are sent as they are produced; when the client reads slower than the
 * model writes, the socket's send buffer is allowed to hold {@link WS_HIGH_WATER_BYTES} before
 * the job stops pulling tokens, so a slow client slows its own jobs instead of growing the
 * node's memory.
 *
 * @module
 */
import { Hono } from "hono";
import { VeriflowError } from "../protocols/errors.ts";
import type { InferenceGateway } from "./inference_gateway.ts";
import { yieldToEventLoop } from "./_event_loop.ts";
import { RequestValidationError } from "./http_errors.ts";
import {
  parseJsonText,
  parseRequest,
  toGenerationParams,
  WsClientMessageSchema,
} from "./request_schemas.ts";
import {
  doneMessage,
  startMessage,
  type WsClientMessage,
  type WsInferMessage,
  type WsServerMessage,
} from "./stream_protocol.ts";

/**
 * Bytes a socket may have queued for sending before its jobs pause. 1 MiB holds thousands of
 * token messages: never reached by a client that keeps up, small enough that hundreds of stuck
 * clients cost little.
 */
export const WS_HIGH_WATER_BYTES = 1 << 20;
/** Event-loop turns a job waits for its last message to be written (about 20 µs each). */
const MAX_FLUSH_TURNS = 8;
/** How often a paused job looks at the send buffer again. */
const DRAIN_POLL_MS = 5;

/** Routes of the WebSocket API; mount under `/v1`. */
export function streamRoutes(gateway: InferenceGateway): Hono {
  const routes = new Hono();
  routes.get("/stream", (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return c.json({
        error: {
          message: "this endpoint speaks WebSocket; send an Upgrade request",
          type: "invalid_request_error",
          param: null,
          code: "upgrade_required",
        },
      }, 426);
    }
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
    new StreamSession(socket, gateway);
    return response;
  });
  return routes;
}

/** One WebSocket connection and the jobs it started. */
class StreamSession {
  #socket: WebSocket;
  #gateway: InferenceGateway;
  /** Running jobs by client id; aborting one cancels it. */
  #jobs = new Map<string, AbortController>();

  constructor(socket: WebSocket, gateway: InferenceGateway) {
    this.#socket = socket;
    this.#gateway = gateway;
    socket.onmessage = (event) => this.#onMessage(event.data);
    socket.onclose = () => this.#cancelAll();
    socket.onerror = () => this.#cancelAll();
  }

  #onMessage(data: unknown): void {
    let message: WsClientMessage;
    let raw: unknown;
    try {
      if (typeof data !== "string") {
        throw new RequestValidationError("invalid_request", "messages must be JSON text frames");
      }
      raw = parseJsonText(data);
      message = parseRequest(WsClientMessageSchema, raw);
    } catch (error) {
      // Attribute the refusal to its request when the frame has a readable id.
      const id = (raw as { id?: unknown } | null | undefined)?.id;
      this.#sendError(typeof id === "string" ? id : undefined, error);
      return;
    }
    if (message.type === "cancel") {
      // Unknown or finished ids are ignored: a cancel may cross the job's `done` in flight.
      this.#jobs.get(message.id)?.abort();
      return;
    }
    if (this.#jobs.has(message.id)) {
      this.#sendError(
        message.id,
        new VeriflowError("duplicate_id", `request id ${message.id} is already running`),
      );
      return;
    }
    const abort = new AbortController();
    this.#jobs.set(message.id, abort);
    this.#run(message, abort.signal).finally(() => this.#jobs.delete(message.id));
  }

  async #run(request: WsInferMessage, signal: AbortSignal): Promise<void> {
    const { id } = request;
    let handle;
    try {
      handle = await this.#gateway.startText({
        model: request.model,
        prompt: request.prompt,
        params: toGenerationParams(request),
        nonce: request.nonce,
      }, signal);
    } catch (error) {
      this.#sendError(id, error);
      return;
    }
    this.#send(startMessage(id, handle));
    if (this.#gateway.computesOnEventLoop) await this.#flushed();
    const reader = handle.tokens.getReader();
    const onAbort = () => reader.cancel().catch(() => {});
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        this.#send({
          type: "token",
          id,
          index: value.index,
          token_id: value.tokenId,
          text: value.text,
        });
        if (this.#socket.bufferedAmount > WS_HIGH_WATER_BYTES) await this.#drained();
        else if (this.#gateway.computesOnEventLoop) await this.#flushed();
      }
    } catch {
      // The stream failed or was cancelled; the summary below says which.
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    const summary = await handle.done;
    if (summary.finishReason === "error") {
      this.#send({
        type: "error",
        id,
        code: summary.error?.code ?? "internal_error",
        message: summary.error?.message ?? "generation failed",
      });
    } else {
      this.#send(doneMessage(id, summary));
    }
  }

  /**
   * Give the socket a few turns of the event loop to write what was just sent, before the next
   * (blocking) compute step: otherwise a token reaches the client one step late. Bounded, so a
   * client with a full TCP window costs little here; the high-water mark deals with those.
   */
  async #flushed(): Promise<void> {
    // At least one turn: `bufferedAmount` may read 0 before the write has been attempted.
    await yieldToEventLoop();
    for (let i = 1; i < MAX_FLUSH_TURNS && this.#socket.bufferedAmount > 0; i++) {
      await yieldToEventLoop();
    }
  }

  async #drained(): Promise<void> {
    while (
      this.#socket.readyState === WebSocket.OPEN &&
      this.#socket.bufferedAmount > WS_HIGH_WATER_BYTES
    ) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
  }

  #send(message: WsServerMessage): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(message));
  }

  #sendError(id: string | undefined, error: unknown): void {
    const code = error instanceof VeriflowError ? error.code : "internal_error";
    const message = error instanceof VeriflowError ? error.message : "internal error";
    this.#send(
      id === undefined ? { type: "error", code, message } : { type: "error", id, code, message },
    );
  }

  #cancelAll(): void {
    for (const abort of this.#jobs.values()) abort.abort();
  }
}
