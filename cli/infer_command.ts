/**
 * `veriflow infer`: stream a completion from a node's WebSocket API to the terminal. Tokens go
 * to stdout as they arrive (so the output pipes cleanly); a summary line (tokens, tokens/s,
 * time to first token, finish reason, job id, whether the receipt signs the printed text) goes to
 * stderr, followed by a `warning:` line when the node says why the job has no receipt (its prover
 * could not store the proof data, say). `--receipt-out FILE` writes the receipt for checking.
 *
 * ```
 * deno run -A cli.ts infer --url ws://127.0.0.1:8080 --max-tokens 32 "Once upon a time"
 * ```
 *
 * @module
 */
import { listenForStopSignals } from "../node/stop_signals.ts";
import { parseArgs } from "node:util";
import {
  DEFAULT_STREAM_IDLE_TIMEOUT_MS,
  StreamClient,
  StreamClosedError,
  type StreamJob,
  StreamRequestError,
} from "../client/stream_client.ts";
import { VeriflowError } from "../protocols/errors.ts";
import {
  notDecimalNumber,
  notWholeNumber,
  parseDecimalNumber,
  parseWholeNumber,
} from "../node/number_flags.ts";
import { flagProblem } from "../node/_unknown_flag.ts";
import { EXIT_USAGE, usageErrorText } from "../node/usage_error_text.ts";
import { API_KEY_VARIABLE, apiKeyFromEnv, missingKeyHint } from "../client/_api_key_variable.ts";
import { terminalText } from "../client/_terminal_text.ts";
import { redactedUrl } from "../client/redacted_url.ts";
import { problemText, receiptOutProblem, writeReceiptFile } from "./_receipt_out.ts";
import { DEFAULT_MAX_TOKENS, MAX_JOB_TOKENS } from "../protocols/job_token_bounds.ts";
import {
  loadReceiptVerifier,
  RECEIPT_CHECK_ENV_VARIABLE,
  type ReceiptJobFacts,
  type ReceiptVerifier,
} from "../client/_receipt_verifier.ts";

/** Where the command writes; defaults to the process's stdout and stderr. */
export interface InferCommandIo {
  /** Receives generated text. */
  stdout: (text: string) => void | Promise<void>;
  /**
   * Whether `stdout` is a terminal: then the node's control characters (escape sequences) are
   * shown as `\xNN`, not obeyed. Default false; the process's own io says what its stdout is.
   */
  stdoutIsTerminal?: boolean;
  /** Receives the summary line and errors. */
  stderr: (text: string) => void | Promise<void>;
  /**
   * Reads all of stdin, for the prompt `-`. The process's io reads its stdin to the end; an io
   * without `stdin` has nothing there.
   */
  stdin?: () => Promise<string>;
  /** Aborting it cancels the job, as a stop signal does (exit 130). */
  signal?: AbortSignal;
  /**
   * Calls `listener` on each stop signal (Ctrl-C's SIGINT, SIGTERM); returns a function that
   * stops listening. The process's own are used by default: Ctrl-C cancels the job on the node
   * (so it stops computing) and the command exits 130.
   */
  onStopSignal?: (listener: () => void) => () => void;
  /**
   * Reads an environment variable (`VERIFLOW_API_KEY`, only when `--api-key` is not given); none
   * are read when absent. Throws `Deno.errors.NotCapable` when the process may not read it, as
   * the default, `Deno.env.get`, does without `--allow-env`.
   */
  env?: (name: string) => string | undefined;
  /** How long connecting may take (default: the client's, 10 s); tests shorten it. */
  connectTimeoutMs?: number;
  /**
   * How long the job may go without a message of its own before the command gives up, when
   * `--idle-timeout` is not given (default `DEFAULT_STREAM_IDLE_TIMEOUT_MS`); tests shorten it.
   */
  idleTimeoutMs?: number;
  /**
   * Loads the check of the job's receipt against the printed text, or resolves undefined where
   * it cannot load (default `loadReceiptVerifier`: only with env access, see
   * `client/_receipt_verifier.ts`); the summary then says `receipt not checked`.
   */
  receiptVerifier?: () => Promise<ReceiptVerifier | undefined>;
}

/** The node a bare `infer` talks to: the default local node. */
export const DEFAULT_INFER_URL = "ws://127.0.0.1:8080";

/** Exit status when the job or the connection failed. */
const EXIT_FAILURE = 1;
/** Exit status after a stop signal: 128 + SIGINT, as shells report. */
const EXIT_INTERRUPTED = 130;

const USAGE = `Usage: cli.ts infer [options] [PROMPT...]

The words of PROMPT are joined with spaces; - reads the prompt from stdin.

  --url URL           node's API (default ${DEFAULT_INFER_URL}; /v1/stream is added)
  --model ID          model CID or name (default: the node's default model)
  --api-key KEY       the node's API key (default: $VERIFLOW_API_KEY, if set)
  --max-tokens N      new tokens at most (1 to ${MAX_JOB_TOKENS}; default: the node's)
  --temperature T     0 = greedy, up to 2 (default 0; 1 with any --top-k, --top-p or --seed)
  --top-k K           keep the K most likely tokens (0 = off)
  --top-p P           nucleus mass in [0, 1] (0: the most likely token only)
  --seed S            seed of the sampling RNG
  --stop TEXT         stop sequence (repeatable)
  --nonce TEXT        job nonce (default random)
  --input CID         a stored text file (one chunk, bafkrei...) the model reads
                      before the prompt; the node reads it from its storage
  --idle-timeout S    give up when the job sends nothing of its own for S seconds
                      (its tokens, or its place every 10 s while it waits in the
                      queue; default ${DEFAULT_STREAM_IDLE_TIMEOUT_MS / 1000}; 0 = wait forever)
  --receipt-out FILE  write the job's receipt, as the node sent it (JSON), to FILE;
                      no receipt: nothing is written, and infer exits 1. FILE is
                      checked before the job is sent: its folder must exist, and it
                      must not be a directory, a symbolic link or (without --force)
                      an existing file. Needs --allow-read and --allow-write on its
                      folder (a temp file there is renamed to FILE); a write that
                      fails prints the receipt on stderr
  --force             let --receipt-out replace an existing file
  -h, --help          this text

Ctrl-C cancels the job on the node and exits 130.

The summary on stderr ends with what the job's receipt says of the printed text:
  receipt ok (not proof of the prompt)
                          the worker that signed the receipt signed this text, for
                          this job id, model and max tokens (not that it is for this
                          prompt: the node may pick the nonce; check that with
                          verifyReceipt and the job, docs/API.md)
  receipt does not match (REASON)
                          it does not sign this text (output_mismatch), is for
                          another job, model or max tokens (job_mismatch,
                          model_mismatch, params_mismatch), or is no valid receipt
                          (malformed, bad_signature): do not trust the text; infer
                          exits 1
  receipt not checked (needs --allow-env)
                          the check needs --allow-env=${RECEIPT_CHECK_ENV_VARIABLE}
                          (or --allow-env); or check --receipt-out's file yourself
No word on it: the job ended without a receipt (a warning says why when the node did).

Examples:
  deno run --allow-net cli.ts infer --max-tokens 32 "Once upon a time"
  echo "Once upon a time" | deno run --allow-net cli.ts infer -
  VERIFLOW_API_KEY=KEY deno run --allow-net --allow-env=VERIFLOW_API_KEY cli.ts infer \\
    --url ws://HOST:8080 "Once upon a time"
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
    stdoutIsTerminal: Deno.stdout.isTerminal(),
    stdin: () => new Response(Deno.stdin.readable).text(),
    env: (name) => Deno.env.get(name),
    onStopSignal: listenForStopSignals,
  };
}

/** `infer`'s flags, as parseArgs takes them (and as a mistyped flag is matched against). */
const INFER_OPTIONS = {
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
  input: { type: "string" },
  "idle-timeout": { type: "string" },
  "receipt-out": { type: "string" },
  force: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

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
      options: INFER_OPTIONS,
    });
  } catch (error) {
    // `--modl` is told `did you mean --model?`, as `start` tells `--prot`.
    // `--max-tokens -3` said as `--max-tokens=-3` is, with the flag's own range.
    const problem = flagProblem(error, Object.keys(INFER_OPTIONS), args, NUMBER_RANGES);
    await io.stderr(usageErrorText(problem, USAGE));
    return EXIT_USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    await io.stdout(USAGE);
    return 0;
  }
  // A job about a stored file may have no prompt of its own: the file is what the model reads.
  if (positionals.length === 0 && values.input === undefined) {
    await io.stderr(
      usageErrorText(
        "no prompt given: give PROMPT, - to read it from stdin, or --input CID",
        USAGE,
      ),
    );
    return EXIT_USAGE;
  }
  // Plain decimal only, as `start` reads numbers: Number() also takes "0x10" and "1e1".
  const numbers: Record<string, number | undefined> = {};
  for (const [flag, whole] of NUMBER_FLAGS) {
    const text = values[flag];
    if (text === undefined) continue;
    const value = flag === "seed"
      ? parseSeed(text)
      : whole
      ? parseWholeNumber(text)
      : parseDecimalNumber(text);
    if (value === undefined) {
      const name = `--${flag}`;
      const range = NUMBER_RANGES[flag];
      const problem = whole
        ? notWholeNumber(name, text, range)
        : notDecimalNumber(name, text, range);
      await io.stderr(usageErrorText(problem, USAGE));
      return EXIT_USAGE;
    }
    const range = NUMBER_RANGES[flag];
    if (range !== undefined && (value < range[0] || value > range[1])) {
      // Said here, by the flag's name, rather than by the node as its wire field (`max_tokens`).
      await io.stderr(
        usageErrorText(`--${flag} ${text} is out of range: ${range[0]} to ${range[1]}`, USAGE),
      );
      return EXIT_USAGE;
    }
    numbers[flag] = value;
  }
  const badUrl = checkUrl(values.url);
  if (badUrl !== undefined) {
    // Without its credentials, as the client's messages name it: stderr is a terminal or a CI log.
    const given = JSON.stringify(redactedUrl(values.url));
    await io.stderr(usageErrorText(
      `--url ${given}: ${badUrl}; give the node's address, like ` + DEFAULT_INFER_URL,
      USAGE,
    ));
    return EXIT_USAGE;
  }
  // `-`, as `put -` and `import -` take it: the prompt is on stdin (a file's, a pipe's).
  let prompt = positionals.join(" ");
  if (positionals.length === 1 && positionals[0] === "-") {
    prompt = withoutLastLineEnd(await (io.stdin?.() ?? Promise.resolve("")));
    if (prompt === "" && values.input === undefined) {
      await io.stderr(usageErrorText("no prompt on stdin (- reads the prompt from it)", USAGE));
      return EXIT_USAGE;
    }
  }

  // Before the job: a paid job must not lose its receipt to a typo, nor a file to the receipt.
  const receiptOut = values["receipt-out"];
  const force = values.force === true;
  if (receiptOut !== undefined) {
    const problem = await receiptOutProblem(receiptOut, force);
    if (problem !== undefined) {
      await io.stderr(
        // A problem is words after the path (`is a directory…`), or a colon and a reason.
        `error: --receipt-out ${terminalText(receiptOut)}${problem.startsWith(":") ? "" : " "}` +
          `${terminalText(problem)}\n`,
      );
      return EXIT_USAGE;
    }
  }

  // Ctrl-C (or io.signal) interrupts: while connecting it gives up; while the job runs it sends
  // the node a cancel, then closes the socket (which cancels it too), so the node stops computing.
  const interrupt = new AbortController();
  const connection = new AbortController();
  let job: StreamJob | undefined;
  interrupt.signal.addEventListener("abort", () => {
    job?.cancel();
    connection.abort();
  }, { once: true });
  const stopListening = io.onStopSignal?.(() => interrupt.abort()) ?? (() => {});
  const onOuterAbort = () => interrupt.abort();
  io.signal?.addEventListener("abort", onOuterAbort, { once: true });
  if (io.signal?.aborted) interrupt.abort();
  try {
    let client: StreamClient;
    const fromEnv = values["api-key"] === undefined ? apiKeyFromEnv(io.env) : { unreadable: false };
    const keyFrom = values["api-key"] !== undefined
      ? "--api-key"
      : fromEnv.key !== undefined
      ? API_KEY_VARIABLE
      : undefined;
    try {
      client = await StreamClient.connect(values.url, {
        signal: connection.signal,
        apiKey: values["api-key"] ?? fromEnv.key,
        connectTimeoutMs: io.connectTimeoutMs,
        idleTimeoutMs: numbers["idle-timeout"] === undefined
          ? io.idleTimeoutMs
          : numbers["idle-timeout"] * 1000,
      });
    } catch (error) {
      if (interrupt.signal.aborted) return await interrupted(io, "before the job started");
      const hint = connectHint(error, keyFrom, fromEnv.unreadable);
      // A refused upgrade's or a close's words are the node's (or whatever answered there).
      await io.stderr(`error: ${nodeText((error as Error).message)}${hint}\n`);
      return EXIT_FAILURE;
    }
    try {
      job = client.infer({
        prompt,
        model: values.model,
        max_tokens: numbers["max-tokens"],
        temperature: numbers["temperature"],
        top_k: numbers["top-k"],
        top_p: numbers["top-p"],
        seed: numbers["seed"],
        stop: values.stop,
        nonce: values.nonce,
        input: values.input,
      }, { onQueued: queueReporter(io) });
      const status = await printJob(job, io, interrupt.signal, {
        url: values.url,
        receiptOut,
        force,
        maxTokens: numbers["max-tokens"],
      });
      return interrupt.signal.aborted
        ? await interrupted(io, "the job was cancelled on the node")
        : status;
    } finally {
      client.close();
    }
  } finally {
    stopListening();
    io.signal?.removeEventListener("abort", onOuterAbort);
  }
}

/** The number flags, and whether each takes whole numbers only (else plain decimals). */
const NUMBER_FLAGS = [
  ["max-tokens", true],
  ["temperature", false],
  ["top-k", true],
  ["top-p", false],
  ["seed", true],
  ["idle-timeout", false],
] as const;

/**
 * The ranges docs/API.md documents for the number flags the node bounds: the node's
 * `GENERATION_LIMITS` (protocols/job.ts), written out, but for the token bound, because that
 * module loads cbor-x, which reads the environment as it loads, and `infer` runs with
 * `--allow-net` alone (tests/cli/infer_command_test.ts checks the two agree). `--seed` is any
 * safe integer, which the node takes as it is; `--idle-timeout` is the client's own.
 */
const NUMBER_RANGES: Partial<Record<(typeof NUMBER_FLAGS)[number][0], [number, number]>> = {
  "max-tokens": [1, MAX_JOB_TOKENS],
  temperature: [0, 2],
  "top-k": [0, 1 << 20],
  "top-p": [0, 1],
};

/**
 * `text` without the one line end that closes it: `echo hi | infer -` asks about "hi", as the
 * prompt typed on the command line would; any other whitespace is the prompt's own.
 */
function withoutLastLineEnd(text: string): string {
  return text.replace(/\r?\n$/, "");
}

/** A seed: a whole number in decimal digits, which may be negative (the node takes an int64). */
function parseSeed(text: string): number | undefined {
  const t = text.trim();
  const negative = /^-\d/.test(t);
  const value = parseWholeNumber(negative ? t.slice(1) : t);
  return value === undefined || !negative ? value : -value;
}

/**
 * Progress on a long wait: a stderr line each time the job's place in the queue changes (the
 * server repeats an unchanged place; that is not news).
 */
function queueReporter(io: InferCommandIo): (position: number) => void {
  let last = 0;
  return (position) => {
    if (position === last) return;
    last = position;
    // A number once the client has checked the frame; shown safe all the same.
    const place = terminalText(String(position));
    Promise.resolve(io.stderr(`[queued: place ${place} in the model's queue]\n`)).catch(
      () => {},
    );
  };
}

/** Say the command was interrupted; answers its exit status. */
async function interrupted(io: InferCommandIo, what: string): Promise<number> {
  await io.stderr(`\ninterrupted: ${what}\n`);
  return EXIT_INTERRUPTED;
}

/** Why `url` cannot be a node's address, or `undefined` when it can. */
function checkUrl(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "not a URL";
  }
  if (!["ws:", "wss:", "http:", "https:"].includes(parsed.protocol)) {
    return `${parsed.protocol}// is not ws://, wss://, http:// or https://`;
  }
  return undefined;
}

/**
 * What to do about a failed connection, for the statuses a node refuses an upgrade with.
 * `keyFrom` names where the API key sent came from (`--api-key`, `VERIFLOW_API_KEY`), if any;
 * `envUnreadable`: `VERIFLOW_API_KEY` could not be read for want of permission.
 */
function connectHint(error: unknown, keyFrom: string | undefined, envUnreadable: boolean): string {
  if (!(error instanceof StreamClosedError)) return "";
  switch (error.details.httpStatus) {
    case 401:
      return keyFrom === undefined
        ? `\n${missingKeyHint(envUnreadable)}`
        : `\n(the node refused the API key given by ${keyFrom}: check it against the node's ` +
          `API keys or operator token)`;
    // 404: the client's own message says what to give (the one place that advice is written).
    case 429:
      // A WebSocket client reads no refusal's body or Retry-After: say what the node's 429 on
      // the handshake is (`too_many_sockets`, server/stream_sockets.ts).
      return "\n(the node has as many /v1/stream sockets open as it allows, for this client or " +
        "in all (too_many_sockets): close another of this client's, or retry in a few seconds)";
    case 503:
      return "\n(the node is starting or stopping: try again in a moment)";
  }
  if (error.details.timeout === "connect") return "\n(is --url the node's address?)";
  // Nothing answered the connection at all: the first thing a newcomer meets with no node up.
  return error.details.httpStatus === undefined && error.details.closeCode === undefined
    ? "\n(no node answered there: start one with `deno task start`, or give its address with --url)"
    : "";
}

/** The node's model list (`GET /v1/models`) beside the API at `url`, which `checkUrl` passed. */
function modelsUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.protocol === "ws:") parsed.protocol = "http:";
  else if (parsed.protocol === "wss:") parsed.protocol = "https:";
  return `${parsed.origin}/v1/models`;
}

/** What {@link printJob} needs of the command's flags. */
interface PrintJobOptions {
  /** `--url`, for hints. */
  url: string;
  /** `--receipt-out`, which {@link receiptOutProblem} passed. */
  receiptOut: string | undefined;
  /** `--force`: the receipt may replace a file at `receiptOut`. */
  force: boolean;
  /** `--max-tokens`: the receipt must sign it (the node's default without it). */
  maxTokens: number | undefined;
}

/**
 * Print the job's tokens and summary, and write its receipt to `receiptOut` when given; silent
 * about a failure that `interrupt` caused.
 */
async function printJob(
  job: StreamJob,
  io: InferCommandIo,
  interrupt: AbortSignal,
  { url, receiptOut, force, maxTokens }: PrintJobOptions,
): Promise<number> {
  try {
    // A worker's text, printed: on a terminal its escape sequences would drive it (review s52).
    const shown = io.stdoutIsTerminal === true ? terminalText : (text: string) => text;
    // The tokens that came, counted here: the summary says what was printed, not what the node
    // claims (the client refuses a `done` whose count differs, but for a cancel's).
    let received = 0;
    // As it came, for the receipt check: at most max_tokens tokens.
    let text = "";
    for await (const token of job.tokens) {
      received++;
      text += token.text;
      if (token.text !== "") await io.stdout(shown(token.text));
    }
    const done = await job.done;
    // Resolved before any token: the model the node said it runs the job on.
    const start = await job.start;
    const receipt = await receiptVerdict(done.receipt, text, io, {
      jobId: done.job_id,
      model: start.model,
      maxTokens: maxTokens ?? DEFAULT_MAX_TOKENS,
    });
    const ttft = done.timings.ttft_ms === null ? "-" : `${done.timings.ttft_ms.toFixed(1)} ms`;
    const tokens = received === 1 ? "1 token" : `${received} tokens`;
    // Every string here is the node's: checked for its shape by the client, escaped all the same.
    const finish = nodeText(done.finish_reason);
    const jobId = nodeText(done.job_id.slice(0, JOB_ID_CHARS));
    await io.stderr(
      `\n[${tokens}, ${done.timings.tokens_per_s.toFixed(1)} tok/s, ` +
        `ttft ${ttft}, finish ${finish}, job ${jobId}${receipt.summary}]\n`,
    );
    let failed = false;
    if (receipt.refused !== undefined) {
      // The text is printed already; the exit status is what a script can still act on.
      await io.stderr(
        `error: the receipt does not vouch for the text above (${receipt.refused}); do not ` +
          `trust it\n`,
      );
      failed = true;
    }
    if (receiptOut !== undefined && !await writeReceipt(done.receipt, receiptOut, force, io)) {
      failed = true;
    }
    if (done.receipt === undefined && done.receipt_error !== undefined) {
      // The text is all there, but nothing this node signed vouches for it.
      const { code, message } = done.receipt_error;
      await io.stderr(
        `warning: the job ended without a receipt (${nodeText(code)}): ${nodeText(message)}\n`,
      );
    }
    return done.finish_reason === "cancelled" || failed ? EXIT_FAILURE : 0;
  } catch (error) {
    if (interrupt.aborted) return EXIT_INTERRUPTED;
    // The node's words (on a router, a worker's): escaped as its text is, since stderr is the
    // user's terminal as often as stdout is.
    const code = error instanceof VeriflowError ? ` (${nodeText(error.code)})` : "";
    const hint = error instanceof StreamClosedError && error.details.timeout === "idle"
      ? "\n(allow a longer silence with --idle-timeout SECONDS, or 0 to wait forever)"
      : error instanceof VeriflowError && error.code === "unknown_model"
      ? `\n(the node lists the models it serves at ${modelsUrl(url)}; without --model it runs ` +
        "its default)"
      : error instanceof StreamRequestError && error.retryAfterS !== undefined
      // The node's message may point at HTTP's Retry-After, which a terminal never shows.
      ? `\n(the node asks to retry in ${error.retryAfterS} s)`
      : "";
    await io.stderr(`\nerror${code}: ${nodeText((error as Error).message)}${hint}\n`);
    return EXIT_FAILURE;
  }
}

/**
 * What the summary says of the job's receipt (`, receipt ok`, …; nothing without one), and, when
 * it does not sign `text`, why (for the error line): review s77, F4.
 */
async function receiptVerdict(
  receipt: unknown,
  text: string,
  io: InferCommandIo,
  job: ReceiptJobFacts,
): Promise<{ summary: string; refused?: string }> {
  if (receipt === undefined) return { summary: "" };
  const verify = await (io.receiptVerifier ?? loadReceiptVerifier)();
  if (verify === undefined) return { summary: ", receipt not checked (needs --allow-env)" };
  const check = verify(receipt, text, job);
  // The node may have picked the nonce, so the prompt is not checked: said where it is read, on
  // the line itself, not only in --help (review s77 vclient, F3).
  if (check.ok) return { summary: ", receipt ok (not proof of the prompt)" };
  // The check's message may quote the node's values (a malformed field's): escaped.
  return {
    summary: `, receipt does not match (${check.reason})`,
    refused: `${check.reason}: ${nodeText(check.message)}`,
  };
}

/**
 * Write `receipt` as it came (JSON) to `path` for `--receipt-out` ({@link writeReceiptFile});
 * whether it was written. A job without a receipt, or a file that cannot be written, is told on
 * stderr, and then the receipt itself too: the job has run, and it is all the user has of it.
 */
async function writeReceipt(
  receipt: unknown,
  path: string,
  force: boolean,
  io: InferCommandIo,
): Promise<boolean> {
  const shownPath = terminalText(path);
  if (receipt === undefined) {
    await io.stderr(
      `error: the job ended without a receipt: no receipt to write to ${shownPath}\n`,
    );
    return false;
  }
  const json = JSON.stringify(receipt, null, 2);
  try {
    await writeReceiptFile(path, `${json}\n`, force);
    return true;
  } catch (error) {
    await io.stderr(
      `error: cannot write the receipt to ${shownPath}${terminalText(problemText(error, path))}` +
        `; the receipt follows, to keep:\n${terminalText(json)}\n`,
    );
    return false;
  }
}

/** Hex characters of the job id in the summary line: enough to find it in logs. */
const JOB_ID_CHARS = 12;

/**
 * The most characters of a node's text (an error's message, a close reason) the command prints.
 * Nothing the node writes itself comes near it, and a worker's message it relays is cut to 1,024
 * characters (`MAX_ERROR_MESSAGE_LENGTH`) before the node's own words go around it; a longer
 * one is a faulty or hostile node's, which must not fill the user's terminal or CI log.
 */
const MAX_SHOWN_NODE_TEXT_CHARS = 2048;

/**
 * A node's text as the command prints it: at most {@link MAX_SHOWN_NODE_TEXT_CHARS} characters
 * of it (then how long it was), its control characters escaped (they would drive the terminal).
 */
function nodeText(text: string): string {
  const shown = text.length <= MAX_SHOWN_NODE_TEXT_CHARS
    ? text
    : `${text.slice(0, MAX_SHOWN_NODE_TEXT_CHARS)}… (${text.length} characters)`;
  return terminalText(shown);
}
