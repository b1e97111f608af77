/**
 * OpenAI-compatible routes: `POST /v1/completions`, `POST /v1/chat/completions`, `GET
 * /v1/models` and `GET /v1/models/{id}`. Response shapes are OpenAI's (`openai_shapes.ts`), so
 * the official clients work unchanged; how an accepted job is answered (SSE or one body, stop
 * sequences, logprobs) is `openai_answers.ts`.
 *
 * Bodies are read within `http.maxRequestBytes` and `http.requestBodyTimeoutMs` and validated
 * once, here; fields OpenAI defines but this node cannot honour (`tools`, `response_format`,
 * `logit_bias`, ...) are refused with a 400 naming the field rather than ignored. The top tokens
 * a request asks for (chat `top_logprobs`, completions `logprobs: N`) go with the submission, not
 * into the job. A request that samples without a `seed` gets a fresh one, as OpenAI's samples
 * vary from call to call (`request_seed.ts`).
 * Each accepted job's answer is registered with the server's graceful shutdown (`serve.ts`), so
 * a stopping node lets it finish, or past the drain deadline ends it with `shutting_down`.
 *
 * @module
 */
import { Hono } from "hono";
import type { InferenceHandle, ServedModelInfo } from "../inference/inference_port.ts";
import { QueuePosition } from "../inference/queue_position.ts";
import { QUEUED_EVENT_REPEAT_MS } from "../protocols/inference_messages.ts";
import { GENERATION_LIMITS } from "../protocols/job.ts";
import {
  CHAT_TURN_STOPS,
  chatTrimmedStops,
  flattenChatContent,
  renderChatPrompt,
  REQUIRED_TURN_STOPS,
  withTurnStops,
} from "./chat_template.ts";
import type { EdgeEnv } from "./client_access.ts";
import type { ClientIdentity } from "./client_identity.ts";
import { bufferedBodyBytesOf, type EdgeConfig } from "./edge_config.ts";
import type { EdgeStats } from "./edge_stats.ts";
import { type InferenceGateway, queueClient, type TextRequest } from "./inference_gateway.ts";
import { type AnswerOptions, fullAnswer, sseAnswer } from "./openai_answers.ts";
import { CHAT_SHAPE, COMPLETION_SHAPE, type ResponseShape } from "./openai_shapes.ts";
import { BodyBudget, readBodyText } from "./body_limit.ts";
import { RequestValidationError } from "./http_errors.ts";
import { repeatedJsonKey, repeatedKeyError } from "./repeated_json_key.ts";
import { drainBeforeShutdown } from "./serve.ts";
import { drawRequestSeed, requestJobSeed } from "./request_seed.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import {
  ChatCompletionRequestSchema,
  CompletionRequestSchema,
  parseJsonText,
  parseRequest,
  refuseTooManyMessages,
  refuseUnsupportedFields,
  toGenerationParams,
} from "./request_schemas.ts";

/**
 * Routes of the OpenAI-compatible API; mount under `/v1`. `timers` (default the system's) is the
 * clock of the request body's deadline and of an SSE client's idle cut-off; `drawSeed` (default
 * {@link drawRequestSeed}) gives the seed of a request that samples without one
 * (`request_seed.ts`); `log` (the node's; default none) tells each SSE idle cut-off.
 */
export function openAiRoutes(
  gateway: InferenceGateway,
  edge: EdgeConfig,
  stats: EdgeStats,
  timers?: ConnectionTimers,
  drawSeed: () => number = drawRequestSeed,
  log?: (line: string) => void,
): Hono<EdgeEnv> {
  const routes = new Hono<EdgeEnv>();
  const deadline = { timeoutMs: edge.requestBodyTimeoutMs, timers };
  // One budget for every body these routes read (`http.maxBufferedBodyBytes`), each client held
  // to its share of it, counted by who the queue counts (`queueClient`), but never below one
  // largest body.
  const budget = new BodyBudget(bufferedBodyBytesOf(edge), {
    minClientBytes: edge.maxRequestBytes,
  });
  const bodyOf = async (request: Request, client: ClientIdentity) => {
    const text = await readBodyText(
      request,
      edge.maxRequestBytes,
      deadline,
      budget,
      queueClient(client),
    );
    const body = parseJsonText(text);
    // A repeated key is refused, not run with its last copy (review s80 serve F1).
    const repeated = repeatedJsonKey(text);
    if (repeated !== undefined) throw repeatedKeyError(repeated, "body");
    return body;
  };
  const answer = (
    raw: Request,
    request: TextRequest,
    shape: ResponseShape,
    client: ClientIdentity,
    options: Pick<AnswerOptions, "logprobs" | "includeUsage"> & {
      stream: boolean;
      /** The stop sequences trimmed from the text; default the job's. */
      stops?: readonly string[];
    },
  ) =>
    respond(gateway, request, shape, client, {
      ...options,
      drainBeforeShutdown: (drain) =>
        drainBeforeShutdown(raw, drain, options.stream ? "sse" : "json"),
      stops: options.stops ?? request.params.stop,
      idleTimeoutMs: edge.clientIdleTimeoutMs,
      timers,
      stats,
      computesOnEventLoop: gateway.computesOnEventLoop,
      log,
      // Read only for one body: a stream learns it from its body's cancel.
      clientGone: options.stream ? undefined : raw.signal,
    });

  routes.post("/completions", async (c) => {
    const body = parseRequest(CompletionRequestSchema, await bodyOf(c.req.raw, c.get("client")));
    refuseUnsupportedFields(body as unknown as Record<string, unknown>, "completions");
    const prompt = typeof body.prompt === "string" ? body.prompt : body.prompt[0];
    const topLogprobs = body.logprobs ?? 0;
    const params = toGenerationParams(body, body.max_completion_tokens);
    params.seed = requestJobSeed(params, body.seed, drawSeed);
    return await answer(
      c.req.raw,
      {
        model: body.model,
        prompt,
        input: body.veriflow_input ?? undefined,
        params,
        topLogprobs,
      },
      COMPLETION_SHAPE,
      c.get("client"),
      {
        stream: body.stream ?? false,
        includeUsage: body.stream_options?.include_usage ?? false,
        logprobs: body.logprobs != null,
      },
    );
  });

  routes.post("/chat/completions", async (c) => {
    const raw = await bodyOf(c.req.raw, c.get("client"));
    refuseTooManyMessages(raw, edge.maxChatMessages);
    const body = parseRequest(ChatCompletionRequestSchema, raw);
    refuseUnsupportedFields(body as unknown as Record<string, unknown>, "chat");
    const prompt = renderChatPrompt(
      body.messages.map((m) => ({
        role: m.role,
        content: flattenChatContent(m.content),
        name: m.name ?? undefined,
      })),
    );
    const params = toGenerationParams(body, body.max_completion_tokens);
    params.seed = requestJobSeed(params, body.seed, drawSeed);
    // A new turn stays a stop whatever the request's `stop` (`withTurnStops`), and a stop that
    // cannot end the output first takes no slot. A list that still leaves no room for the user
    // turn's two stops is refused here, naming the field, rather than sent on as a job every
    // port refuses (or run without the turn's end).
    const requested = params.stop;
    params.stop = withTurnStops(requested);
    const trimmed = chatTrimmedStops(requested, params.stop);
    if (params.stop.length > GENERATION_LIMITS.maxStopSequences) {
      const required = CHAT_TURN_STOPS.slice(0, REQUIRED_TURN_STOPS);
      throw new RequestValidationError(
        "invalid_request",
        `'stop': at most ${GENERATION_LIMITS.maxStopSequences - REQUIRED_TURN_STOPS} stop ` +
          `sequences here that each end the output on their own: the chat template's new user ` +
          `turn (${required.map((stop) => JSON.stringify(stop)).join(" and ")}) takes ` +
          `${REQUIRED_TURN_STOPS} of a job's ${GENERATION_LIMITS.maxStopSequences}, unless one ` +
          `of them is part of it (such as ${JSON.stringify("\n")}); one that contains another ` +
          `(or a turn's start) takes none`,
        "stop",
      );
    }
    // The schema has checked that top_logprobs comes with logprobs: true.
    const topLogprobs = body.top_logprobs ?? 0;
    return await answer(
      c.req.raw,
      { model: body.model, prompt, params, promptParam: "messages", topLogprobs },
      CHAT_SHAPE,
      c.get("client"),
      {
        stream: body.stream ?? false,
        includeUsage: body.stream_options?.include_usage ?? false,
        logprobs: body.logprobs ?? false,
        stops: trimmed,
      },
    );
  });

  routes.get("/models", async (c) => {
    const models = await gateway.listModels().catch((error) => {
      // A router with no worker connected serves no model now: the list of what it serves is
      // empty, as an OpenAI-compatible server answers when nothing is served. It was 503
      // `no_worker`, on which an OpenAI client's `models.list()` raises (review s72, docs F3).
      // A job, or a model asked for by id, still gets `no_worker`, which says why.
      if ((error as { code?: unknown } | null)?.code === "no_worker") return [];
      throw error;
    });
    return c.json({ object: "list", data: models.map(modelObject) });
  });

  // The id runs to the end of the path: a Hugging Face model's name has a slash in it
  // (`org/name`, its `_name_or_path`), which curl sends as is (the openai Node client as `%2F`).
  routes.get("/models/:id{.+}", async (c) => {
    // By CID or name, as requests name models; unknown: 404 `unknown_model`.
    return c.json(modelObject(await gateway.resolveModel(c.req.param("id"))));
  });

  return routes;
}

/** A model as OpenAI's `model` object, with Veriflow's details under `veriflow`. */
function modelObject(model: ServedModelInfo): Record<string, unknown> {
  return {
    id: model.cid,
    object: "model",
    created: 0,
    owned_by: "veriflow",
    veriflow: {
      name: model.name,
      kind: model.kind,
      context_length: model.contextLength ?? null,
      execution_provider: model.executionProvider ?? null,
      ...(model.executionProviderFallback === undefined
        ? {}
        : { execution_provider_fallback: model.executionProviderFallback }),
    },
  };
}

async function respond(
  gateway: InferenceGateway,
  request: TextRequest,
  shape: ResponseShape,
  client: ClientIdentity,
  options: AnswerOptions & { stream: boolean },
): Promise<Response> {
  // A stream reports the job's place in the queue while it waits (repeated, so a proxy does
  // not take a long wait for a dead connection); one body has nothing to say before its end.
  const queue = options.stream
    ? new QueuePosition({ repeatMs: QUEUED_EVENT_REPEAT_MS })
    : undefined;
  let handle: InferenceHandle;
  try {
    // Refusals (404, 400, 429) are thrown here, before any status is committed.
    handle = await gateway.startText(request, {
      client,
      via: shape === CHAT_SHAPE ? "chat" : "completions",
      onQueued: queue?.update,
    });
  } catch (error) {
    queue?.close();
    throw error;
  }
  return options.stream
    ? sseAnswer(handle, shape, { ...options, queue })
    : await fullAnswer(handle, shape, options);
}
