/**
 * OpenAI-compatible routes: `POST /v1/completions` and `POST /v1/chat/completions`, streamed as
 * server-sent events (`stream: true`: `data: {chunk}` lines ending with `data: [DONE]`) or
 * answered with one JSON body. Response shapes are OpenAI's, so the official clients work
 * unchanged; Veriflow adds `veriflow_job_id` and, when the node runs a prover,
 * `veriflow_receipt` (byte strings as hex) to the final chunk and to the full body.
 *
 * A client that disconnects cancels its job: both answers are response-body streams whose
 * `cancel` (the client went away) cancels the token stream, which stops the model.
 *
 * @module
 */
import { Hono } from "hono";
import type { FinishReason, InferenceHandle, JobSummary } from "../inference/inference_port.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { CHAT_TURN_STOP, flattenChatContent, renderChatPrompt } from "./chat_template.ts";
import type { ClientIdentity } from "./client_identity.ts";
import type { InferenceGateway, TextRequest } from "./inference_gateway.ts";
import { toJsonValue } from "./json_value.ts";
import {
  ChatCompletionRequestSchema,
  CompletionRequestSchema,
  parseJsonText,
  parseRequest,
  toGenerationParams,
} from "./request_schemas.ts";
import { wireUsage } from "./stream_protocol.ts";
import { openAiErrorBody } from "./http_errors.ts";
import { yieldToEventLoop } from "./_event_loop.ts";
import { readBodyText } from "./body_limit.ts";
import type { EdgeEnv } from "./client_access.ts";
import type { EdgeConfig } from "./edge_config.ts";
import type { EdgeStats } from "./edge_stats.ts";

/** How a response family (completions, chat) shapes its choices. */
interface ResponseShape {
  /** Prefix of response ids (`cmpl`, `chatcmpl`). */
  idPrefix: string;
  /** `object` of a full response. */
  object: string;
  /** `object` of a streamed chunk. */
  chunkObject: string;
  /** The choice of a streamed chunk: a text piece, or the end (`text` null). */
  chunkChoice(text: string | null, finishReason: string | null): Record<string, unknown>;
  /** A chunk sent before any token (chat announces the assistant role), if any. */
  openingChoice?(): Record<string, unknown>;
  /** The choice of a full response. */
  fullChoice(text: string, finishReason: string | null): Record<string, unknown>;
}

const COMPLETION_SHAPE: ResponseShape = {
  idPrefix: "cmpl",
  object: "text_completion",
  chunkObject: "text_completion",
  chunkChoice: (text, finishReason) => ({
    index: 0,
    text: text ?? "",
    logprobs: null,
    finish_reason: finishReason,
  }),
  fullChoice: (text, finishReason) => ({
    index: 0,
    text,
    logprobs: null,
    finish_reason: finishReason,
  }),
};

const CHAT_SHAPE: ResponseShape = {
  idPrefix: "chatcmpl",
  object: "chat.completion",
  chunkObject: "chat.completion.chunk",
  chunkChoice: (text, finishReason) => ({
    index: 0,
    delta: text === null ? {} : { content: text },
    logprobs: null,
    finish_reason: finishReason,
  }),
  openingChoice: () => ({
    index: 0,
    delta: { role: "assistant", content: "" },
    logprobs: null,
    finish_reason: null,
  }),
  fullChoice: (text, finishReason) => ({
    index: 0,
    message: { role: "assistant", content: text },
    logprobs: null,
    finish_reason: finishReason,
  }),
};

/** Hex characters of the job id used in OpenAI-style response ids. */
const RESPONSE_ID_CHARS = 24;
const MS_PER_S = 1000;

/** Routes of the OpenAI-compatible API; mount under `/v1`. */
export function openAiRoutes(
  gateway: InferenceGateway,
  edge: EdgeConfig,
  stats: EdgeStats,
): Hono<EdgeEnv> {
  const routes = new Hono<EdgeEnv>();
  const bodyOf = async (request: Request) =>
    parseJsonText(await readBodyText(request, edge.maxRequestBytes));

  routes.post("/completions", async (c) => {
    const body = parseRequest(CompletionRequestSchema, await bodyOf(c.req.raw));
    const prompt = typeof body.prompt === "string" ? body.prompt : body.prompt[0];
    const request: TextRequest = {
      model: body.model,
      prompt,
      params: toGenerationParams(body),
    };
    return await respond(gateway, request, COMPLETION_SHAPE, {
      stream: body.stream ?? false,
      includeUsage: body.stream_options?.include_usage ?? false,
      client: c.get("client"),
      idle: { timeoutMs: edge.clientIdleTimeoutMs, stats },
    });
  });

  routes.post("/chat/completions", async (c) => {
    const body = parseRequest(ChatCompletionRequestSchema, await bodyOf(c.req.raw));
    const prompt = renderChatPrompt(
      body.messages.map((m) => ({ role: m.role, content: flattenChatContent(m.content) })),
    );
    const params = toGenerationParams(body, body.max_completion_tokens);
    if (body.stop == null) params.stop = [CHAT_TURN_STOP];
    return await respond(
      gateway,
      { model: body.model, prompt, params, promptParam: "messages" },
      CHAT_SHAPE,
      {
        stream: body.stream ?? false,
        includeUsage: body.stream_options?.include_usage ?? false,
        client: c.get("client"),
        idle: { timeoutMs: edge.clientIdleTimeoutMs, stats },
      },
    );
  });

  routes.get("/models", async (c) => {
    const models = await gateway.listModels();
    return c.json({
      object: "list",
      data: models.map((model) => ({
        id: model.cid,
        object: "model",
        created: 0,
        owned_by: "veriflow",
        veriflow: {
          name: model.name,
          kind: model.kind,
          context_length: model.contextLength ?? null,
          execution_provider: model.executionProvider ?? null,
        },
      })),
    });
  });

  return routes;
}

/** How a response is given. */
interface RespondOptions {
  /** Server-sent events, or one body. */
  stream: boolean;
  /** Send a last chunk with usage (streams). */
  includeUsage: boolean;
  /** Who asks. */
  client: ClientIdentity;
  /** How long a streaming client may read nothing, and where a cut-off is counted. */
  idle: IdleRule;
}

/** A streaming client that reads nothing for `timeoutMs` is cut off and its job cancelled. */
interface IdleRule {
  /** `http.clientIdleTimeoutMs`. */
  timeoutMs: number;
  /** Counts the cut-offs. */
  stats: EdgeStats;
}

async function respond(
  gateway: InferenceGateway,
  request: TextRequest,
  shape: ResponseShape,
  options: RespondOptions,
): Promise<Response> {
  // Refusals (404, 400, 429) are thrown here, before any status is committed.
  const handle = await gateway.startText(request, {
    client: options.client,
    via: shape.idPrefix === "chatcmpl" ? "chat" : "completions",
  });
  return options.stream
    ? sseResponse(handle, shape, options, gateway.computesOnEventLoop)
    : fullResponse(handle, shape);
}

/**
 * The non-streamed answer: one JSON body once the job has ended. The body is still a stream,
 * so that a client that goes away cancels the job through the body's `cancel`, as with SSE
 * (watching `request.signal` instead would also fire after every successful response under
 * Deno's legacy abort semantics). The cost: the 200 is committed when the job starts, so a job
 * that fails midway answers 200 with an OpenAI error body.
 */
function fullResponse(handle: InferenceHandle, shape: ResponseShape): Response {
  const collected = (async () => {
    let text = "";
    try {
      for await (const chunk of handle.tokens) text += chunk.text;
    } catch {
      // Cancelled or failed: the summary says which.
    }
    return { text, summary: await handle.done };
  })();
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { text, summary } = await collected;
      let json: Record<string, unknown>;
      if (summary.finishReason === "error" || summary.finishReason === "cancelled") {
        json = openAiErrorBody(
          new VeriflowError(
            summary.error?.code ?? "job_cancelled",
            summary.error?.message ?? "the job was cancelled",
          ),
        ) as unknown as Record<string, unknown>;
      } else {
        json = {
          id: `${shape.idPrefix}-${summary.jobId.slice(0, RESPONSE_ID_CHARS)}`,
          object: shape.object,
          created: Math.floor(Date.now() / MS_PER_S),
          model: handle.model.cid,
          choices: [shape.fullChoice(text, openAiFinishReason(summary.finishReason))],
          usage: wireUsage(summary),
          veriflow_job_id: summary.jobId,
        };
        if (summary.receipt !== undefined) json.veriflow_receipt = toJsonValue(summary.receipt);
        else if (summary.error !== undefined) json.veriflow_receipt_error = summary.error;
      }
      controller.enqueue(encoder.encode(JSON.stringify(json)));
      controller.close();
    },
    cancel() {
      handle.cancel();
    },
  }, { highWaterMark: 0 });
  return new Response(body, { headers: { "content-type": "application/json" } });
}

/** OpenAI has only `stop` and `length` for a job that ran to its end. */
function openAiFinishReason(reason: FinishReason): string | null {
  return reason === "stop" || reason === "length" ? reason : null;
}

const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  // Reverse proxies (nginx) buffer responses unless told not to; tokens must flow as made.
  "x-accel-buffering": "no",
};

/** The SSE response for a streamed job: one `data:` event per non-empty text piece. */
function sseResponse(
  handle: InferenceHandle,
  shape: ResponseShape,
  options: RespondOptions,
  computesOnEventLoop: boolean,
): Response {
  const { includeUsage, idle } = options;
  const encoder = new TextEncoder();
  const reader = handle.tokens.getReader();
  const id = `${shape.idPrefix}-${handle.jobId.slice(0, RESPONSE_ID_CHARS)}`;
  const created = Math.floor(Date.now() / MS_PER_S);
  const chunk = (choices: Record<string, unknown>[], extra?: Record<string, unknown>) =>
    encoder.encode(
      `data: ${
        JSON.stringify({
          id,
          object: shape.chunkObject,
          created,
          model: handle.model.cid,
          choices,
          ...extra,
        })
      }\n\n`,
    );
  let opened = shape.openingChoice === undefined;
  let sent = 0;

  const finish = (controller: ReadableStreamDefaultController<Uint8Array>, summary: JobSummary) => {
    if (summary.finishReason === "error" || summary.finishReason === "cancelled") {
      // Mid-stream failures cannot change the status any more; OpenAI clients raise on an
      // `error` member in an event.
      const error = {
        message: summary.error?.message ?? "the job was cancelled",
        type: "server_error",
        param: null,
        code: summary.error?.code ?? "job_cancelled",
      };
      controller.enqueue(encoder.encode(`data: ${JSON.stringify({ error })}\n\n`));
    } else {
      const extra: Record<string, unknown> = { veriflow_job_id: summary.jobId };
      if (summary.receipt !== undefined) extra.veriflow_receipt = toJsonValue(summary.receipt);
      else if (summary.error !== undefined) extra.veriflow_receipt_error = summary.error;
      controller.enqueue(
        chunk([shape.chunkChoice(null, openAiFinishReason(summary.finishReason))], extra),
      );
      if (includeUsage) controller.enqueue(chunk([], { usage: wireUsage(summary) }));
    }
    controller.enqueue(encoder.encode("data: [DONE]\n\n"));
    controller.close();
  };

  // Armed while an event waits for the client to read it (the body is pulled only as the
  // connection takes bytes): a client that stops reading would otherwise hold its job's slot
  // for as long as it keeps the connection open.
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  const awaitReader = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    idleTimer = setTimeout(() => {
      idle.stats.idleTimeouts++;
      handle.cancel();
      controller.error(
        new Error(`the client read nothing for ${idle.timeoutMs} ms (http.clientIdleTimeoutMs)`),
      );
    }, idle.timeoutMs);
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      clearTimeout(idleTimer);
      await next(controller);
      awaitReader(controller);
    },
    cancel() {
      clearTimeout(idleTimer);
      handle.cancel();
    },
  }, { highWaterMark: 0 });
  return new Response(body, { headers: SSE_HEADERS });

  async function next(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    if (!opened) {
      opened = true;
      controller.enqueue(chunk([shape.openingChoice!()]));
      return;
    }
    // onnxruntime-node computes on the JS thread: give the last event's write a turn of
    // the event loop before the next (blocking) step, or it would leave one step late.
    if (sent > 0 && computesOnEventLoop) await yieldToEventLoop();
    // Skip pieces with no text (a multi-byte character still incomplete): an empty delta
    // tells a client nothing.
    while (true) {
      let result: ReadableStreamReadResult<{ text: string }>;
      try {
        result = await reader.read();
      } catch {
        finish(controller, await handle.done);
        return;
      }
      if (result.done) {
        finish(controller, await handle.done);
        return;
      }
      if (result.value.text !== "") {
        controller.enqueue(chunk([shape.chunkChoice(result.value.text, null)]));
        sent++;
        return;
      }
    }
  }
}
