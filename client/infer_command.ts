/**
 * `veriflow infer`: stream a completion from a node's WebSocket API to the terminal. Tokens go
 * to stdout as they arrive (so the output pipes cleanly); a summary line (tokens, tokens/s,
 * time to first token, finish reason, job id) goes to stderr.
 *
 * ```
 * deno run -A cli.ts infer --url ws://127.0.0.1:8080 --max-tokens 32 "Once upon a time"
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { StreamClient, type StreamJob } from "./stream_client.ts";
import { VeriflowError } from "../protocols/errors.ts";

/** Where the command writes; defaults to the process's stdout and stderr. */
export interface InferCommandIo {
  /** Receives generated text. */
  stdout: (text: string) => void | Promise<void>;
  /** Receives the summary line and errors. */
  stderr: (text: string) => void | Promise<void>;
  /** Aborting it cancels the job (the CLI wires Ctrl-C here). */
  signal?: AbortSignal;
  /** Reads an environment variable (`VERIFLOW_API_KEY`); none are read when absent. */
  env?: (name: string) => string | undefined;
}

/** The node a bare `infer` talks to: the default local node. */
export const DEFAULT_INFER_URL = "ws://127.0.0.1:8080";

/** Exit status for a usage error, as is customary for command-line tools. */
const EXIT_USAGE = 2;
/** Exit status when the job or the connection failed. */
const EXIT_FAILURE = 1;

const USAGE = `usage: veriflow infer [options] PROMPT...

  --url URL           node's API (default ${DEFAULT_INFER_URL}; /v1/stream is added)
  --model ID          model CID or name (default: the node's default model)
  --api-key KEY       the node's API key (default: $VERIFLOW_API_KEY, if set)
  --max-tokens N      new tokens at most
  --temperature T     0 = greedy (default), up to 2
  --top-k K           keep the K most likely tokens (0 = off)
  --top-p P           nucleus mass in (0, 1]
  --seed S            seed of the sampling RNG
  --stop TEXT         stop sequence (repeatable)
  --nonce TEXT        job nonce (default random)
  -h, --help          this text
`;

const encoder = new TextEncoder();

function defaultIo(): InferCommandIo {
  return {
    stdout: async (text) => {
      await Deno.stdout.write(encoder.encode(text));
    },
    stderr: async (text) => {
      await Deno.stderr.write(encoder.encode(text));
    },
    env: (name) => {
      try {
        return Deno.env.get(name);
      } catch {
        return undefined; // run without --allow-env: no key from the environment
      }
    },
  };
}

/**
 * Run `infer` with command-line arguments; resolves to the exit status (0 ok, 1 failed, 2 bad
 * usage).
 *
 * @example
 * ```ts ignore
 * Deno.exit(await runInfer(["--url", "ws://127.0.0.1:8080", "hello"]));
 * ```
 */
export async function runInfer(args: string[], io: InferCommandIo = defaultIo()): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        url: { type: "string", default: DEFAULT_INFER_URL },
        model: { type: "string" },
        "api-key": { type: "string" },
        "max-tokens": { type: "string" },
        temperature: { type: "string" },
        "top-k": { type: "string" },
        "top-p": { type: "string" },
        seed: { type: "string" },
        stop: { type: "string", multiple: true },
        nonce: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    await io.stderr(`${(error as Error).message}\n${USAGE}`);
    return EXIT_USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    await io.stdout(USAGE);
    return 0;
  }
  if (positionals.length === 0) {
    await io.stderr(`no prompt given\n${USAGE}`);
    return EXIT_USAGE;
  }
  const numbers: Record<string, number | undefined> = {};
  for (const flag of ["max-tokens", "temperature", "top-k", "top-p", "seed"] as const) {
    const text = values[flag];
    if (text === undefined) continue;
    const value = Number(text);
    if (text.trim() === "" || !Number.isFinite(value)) {
      await io.stderr(`--${flag} needs a number, got ${JSON.stringify(text)}\n`);
      return EXIT_USAGE;
    }
    numbers[flag] = value;
  }

  let client: StreamClient;
  try {
    client = await StreamClient.connect(values.url, {
      signal: io.signal,
      apiKey: values["api-key"] ?? io.env?.("VERIFLOW_API_KEY"),
    });
  } catch (error) {
    await io.stderr(`error: ${(error as Error).message}\n`);
    return EXIT_FAILURE;
  }
  try {
    const job = client.infer({
      prompt: positionals.join(" "),
      model: values.model,
      max_tokens: numbers["max-tokens"],
      temperature: numbers["temperature"],
      top_k: numbers["top-k"],
      top_p: numbers["top-p"],
      seed: numbers["seed"],
      stop: values.stop,
      nonce: values.nonce,
    });
    io.signal?.addEventListener("abort", () => job.cancel(), { once: true });
    return await printJob(job, io);
  } finally {
    client.close();
  }
}

async function printJob(job: StreamJob, io: InferCommandIo): Promise<number> {
  try {
    for await (const token of job.tokens) {
      if (token.text !== "") await io.stdout(token.text);
    }
    const done = await job.done;
    const { completion_tokens } = done.usage;
    const ttft = done.timings.ttft_ms === null ? "-" : `${done.timings.ttft_ms.toFixed(1)} ms`;
    await io.stderr(
      `\n[${completion_tokens} tokens, ${done.timings.tokens_per_s.toFixed(1)} tok/s, ` +
        `ttft ${ttft}, finish ${done.finish_reason}, job ${done.job_id.slice(0, JOB_ID_CHARS)}` +
        `${done.receipt === undefined ? "" : ", receipt"}]\n`,
    );
    return done.finish_reason === "cancelled" ? EXIT_FAILURE : 0;
  } catch (error) {
    const code = error instanceof VeriflowError ? ` (${error.code})` : "";
    await io.stderr(`\nerror${code}: ${(error as Error).message}\n`);
    return EXIT_FAILURE;
  }
}

/** Hex characters of the job id in the summary line: enough to find it in logs. */
const JOB_ID_CHARS = 12;
