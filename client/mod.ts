/**
 * The streaming client alone, for programs that only consume a Veriflow node's inference: the
 * package's `./client` entry point. It loads no model runtime and no native module, so it needs
 * only `--allow-net` (the package's main entry point, `mod.ts`, re-exports it with everything
 * else, and loads onnxruntime and cbor-x, which need `--allow-env`, `--allow-ffi` and
 * `--allow-read`).
 *
 * @example
 * ```ts ignore
 * import { StreamClient } from "@veriflow/node/client";
 * using client = await StreamClient.connect("ws://127.0.0.1:8080"); // closed when the scope ends
 * const job = client.infer({ prompt: "The history of", max_tokens: 16 });
 * for await (const token of job.tokens) console.log(token.text);
 * ```
 *
 * @module
 */
export * from "./stream_client.ts";
// For a program's own messages that name the URL it connects to, as the client's do.
export { redactedUrl } from "./redacted_url.ts";
// The types the client's API names, so that its users can name them too.
export { VeriflowError } from "../protocols/errors.ts";
export type {
  SamplingRequest,
  WireTimings,
  WireUsage,
  WsCancelMessage,
  WsClientMessage,
  WsDoneMessage,
  WsErrorMessage,
  WsInferMessage,
  WsQueuedMessage,
  WsServerMessage,
  WsStartMessage,
  WsTokenMessage,
  WsTopLogprob,
} from "../server/stream_protocol.ts";
export type { FinishReason as JobFinishReason } from "../inference/inference_port.ts";
// The OpenAI-style streamed chunks of `/v1/completions` and `/v1/chat/completions`, with
// Veriflow's fields (`veriflow_receipt`, …): read them from the `openai` package's chunks.
export type {
  ChatCompletionChunk,
  ChatCompletionChunkChoice,
  ChatLogprobs,
  ChatTokenLogprob,
  CompletionChunk,
  CompletionChunkChoice,
  CompletionLogprobs,
  OpenAiFinishReason,
  OpenAiStreamChunk,
  VeriflowChunkFields,
} from "../server/openai_shapes.ts";
