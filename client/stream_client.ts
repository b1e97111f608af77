/**
 * A small client for the WebSocket streaming API (`/v1/stream`, see docs/API.md): one socket,
 * any number of concurrent jobs, each a stream of tokens and a promise of its end.
 *
 * @example
 * ```ts ignore
 * const client = await StreamClient.connect("ws://127.0.0.1:8080");
 * const job = client.infer({ prompt: "Hello", max_tokens: 16 });
 * for await (const token of job.tokens) Deno.stdout.write(new TextEncoder().encode(token.text));
 * console.log(await job.done); // { finish_reason, usage, timings, receipt? }
 * client.close();
 * ```
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";
import type {
  WsDoneMessage,
  WsInferMessage,
  WsServerMessage,
  WsStartMessage,
  WsTokenMessage,
} from "../server/stream_protocol.ts";

/** The server refused or failed a request (`code` is the server's error code). */
export class StreamRequestError extends VeriflowError {}

/** The socket closed or failed before the job ended. */
export class StreamClosedError extends VeriflowError {
  /**
   * Create it.
   *
   * @param message What happened.
   */
  constructor(message: string) {
    super("stream_closed", message);
  }
}

/** An `infer` request; `id` is chosen by the client when absent. */
export type InferRequest = Omit<WsInferMessage, "type" | "id"> & { id?: string };

/** One job started on the socket. */
export interface StreamJob {
  /** The request id on this socket. */
  id: string;
  /** Resolves with the server's `start` (job id, model, execution provider). */
  start: Promise<WsStartMessage>;
  /** Tokens as they arrive; errors with {@link StreamRequestError} if the job fails. */
  tokens: ReadableStream<WsTokenMessage>;
  /** Resolves with `done` (also after a cancel: `finish_reason: "cancelled"`). */
  done: Promise<WsDoneMessage>;
  /** Ask the server to cancel the job. */
  cancel(): void;
}

/** Options of {@link StreamClient.connect}. */
export interface StreamClientOptions {
  /** Aborting it closes the socket (and so cancels its jobs on the server). */
  signal?: AbortSignal;
  /** The node's API key, sent as `Authorization: Bearer` in the handshake (not from browsers). */
  apiKey?: string;
}

interface PendingJob {
  start: PromiseWithResolvers<WsStartMessage>;
  done: PromiseWithResolvers<WsDoneMessage>;
  tokens: ReadableStreamDefaultController<WsTokenMessage>;
}

/** The API's path, appended to a URL given without one. */
export const STREAM_PATH = "/v1/stream";

/**
 * The WebSocket URL of the API for a base URL: `http(s)` becomes `ws(s)`, and a URL without a
 * path gets {@link STREAM_PATH}.
 */
export function streamUrl(url: string | URL): URL {
  const parsed = new URL(url);
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  if (parsed.pathname === "/" || parsed.pathname === "") parsed.pathname = STREAM_PATH;
  return parsed;
}

/** A connection to `/v1/stream`. */
export class StreamClient {
  #socket: WebSocket;
  #jobs = new Map<string, PendingJob>();
  #nextId = 0;
  #closed = false;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => this.#onMessage(event.data);
    socket.onclose = () => this.#failAll("the socket closed before the job ended");
  }

  /** Open a connection; resolves once the socket is open. */
  static connect(url: string | URL, options?: StreamClientOptions): Promise<StreamClient> {
    const socket = options?.apiKey === undefined ? new WebSocket(streamUrl(url)) : new WebSocket(
      streamUrl(url),
      // Deno's WebSocket takes handshake headers; the DOM typings do not know the option.
      { headers: { authorization: `Bearer ${options.apiKey}` } } as unknown as string[],
    );
    const client = new StreamClient(socket);
    const { promise, resolve, reject } = Promise.withResolvers<StreamClient>();
    socket.onopen = () => resolve(client);
    socket.onerror = () => reject(new StreamClosedError(`cannot connect to ${streamUrl(url)}`));
    options?.signal?.addEventListener("abort", () => client.close(), { once: true });
    return promise;
  }

  /**
   * Start a job. On a socket that is closed or closing, the job fails at once with
   * {@link StreamClosedError}: nothing would ever answer it.
   */
  infer(request: InferRequest): StreamJob {
    const id = request.id ?? `r${++this.#nextId}`;
    if (this.#jobs.has(id)) throw new RangeError(`request id ${id} is already in use`);
    if (this.#socket.readyState !== WebSocket.OPEN) {
      return failedJob(id, this.#closedError("the socket is closed"));
    }
    let tokens!: ReadableStreamDefaultController<WsTokenMessage>;
    const stream = new ReadableStream<WsTokenMessage>({
      start: (controller) => {
        tokens = controller;
      },
      cancel: () => this.#send({ type: "cancel", id }),
    });
    const job: PendingJob = {
      start: Promise.withResolvers(),
      done: Promise.withResolvers(),
      tokens,
    };
    // Callers that only read tokens must not see unhandled rejections from the promises.
    job.start.promise.catch(() => {});
    job.done.promise.catch(() => {});
    this.#jobs.set(id, job);
    this.#send({ ...request, type: "infer", id });
    return {
      id,
      start: job.start.promise,
      tokens: stream,
      done: job.done.promise,
      cancel: () => this.#send({ type: "cancel", id }),
    };
  }

  /** Close the socket; the server cancels any job still running. */
  close(): void {
    this.#closed = true;
    this.#socket.close();
  }

  /** Resolves when the socket has closed. */
  get closed(): Promise<void> {
    if (this.#socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => this.#socket.addEventListener("close", () => resolve()));
  }

  #send(message: unknown): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(message));
  }

  #onMessage(data: unknown): void {
    if (typeof data !== "string") return;
    const message = JSON.parse(data) as WsServerMessage;
    // An `error` without `id` ends no job: a frame the server could not attribute, or one it
    // refused while the job it named runs on (`refused_id`); this client sends neither.
    const job = message.id === undefined ? undefined : this.#jobs.get(message.id);
    if (!job) return;
    switch (message.type) {
      case "start":
        job.start.resolve(message);
        break;
      case "token":
        settle(() => job.tokens.enqueue(message));
        break;
      case "done":
        this.#jobs.delete(message.id);
        settle(() => job.tokens.close());
        job.done.resolve(message);
        break;
      case "error": {
        this.#jobs.delete(message.id!);
        const error = new StreamRequestError(message.code, message.message);
        job.start.reject(error);
        settle(() => job.tokens.error(error));
        job.done.reject(error);
        break;
      }
    }
  }

  #closedError(reason: string): StreamClosedError {
    return new StreamClosedError(this.#closed ? "the client closed the socket" : reason);
  }

  #failAll(reason: string): void {
    const error = this.#closedError(reason);
    for (const job of this.#jobs.values()) {
      job.start.reject(error);
      settle(() => job.tokens.error(error));
      job.done.reject(error);
    }
    this.#jobs.clear();
  }
}

/** A job that failed before it was sent: its promises reject and its tokens error with `error`. */
function failedJob(id: string, error: Error): StreamJob {
  const start = Promise.reject(error);
  const done = Promise.reject(error);
  // As for a sent job: callers that only read tokens must not see unhandled rejections.
  start.catch(() => {});
  done.catch(() => {});
  const tokens = new ReadableStream<WsTokenMessage>({
    start: (controller) => controller.error(error),
  });
  return { id, start, tokens, done, cancel: () => {} };
}

/** Run a stream-controller call that throws once the reader has cancelled; then it is moot. */
function settle(action: () => void): void {
  try {
    action();
  } catch {
    // The reader cancelled the token stream; the job's promises still settle.
  }
}
