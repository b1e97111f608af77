/**
 * How the node's log lines are written: `text` for a person at a terminal (the line as the node
 * says it), `json` for a log collector — one JSON object per line with `time` (ISO 8601),
 * `level` (`info`, `warn`, `error`), `component` (the word before the first colon: `validator`,
 * `storage`, `network`… or `node`, also for a line led by a word that says its kind, such as
 * `error:` or `try:`) and `msg`. Lines are the node's existing sentences, so both
 * modes say the same thing; only the framing differs. In both, one call is one line: `text`
 * shows control characters inside a line escaped ({@link printableLine}), and `json` escapes
 * the same characters as JSON (`\u202e`), so neither lets a peer's words recolour, clear or
 * reorder the operator's terminal; but the zero-width joiners inside a word stay as they are
 * (`word_joiners.ts`), so an emoji sequence or Persian in a peer's words or a model's name reads
 * as itself.
 *
 * @example
 * ```ts
 * import { lineLogger } from "./log_format.ts";
 * const log = lineLogger("json", console.log);
 * log("validator: challenged job 3f2a9c → valid");
 * // {"time":"…","level":"info","component":"validator","msg":"validator: challenged job 3f2a9c → valid"}
 * ```
 *
 * @module
 */
import { joinsWord } from "./word_joiners.ts";

/** The two log formats (`log.format`, `--log-format`). */
export type LogFormat = "text" | "json";

/** Severity of a log line. */
export type LogLevel = "info" | "warn" | "error";

/** One structured log line, as `json` mode writes it. */
export interface LogRecord {
  /** When it was written (ISO 8601). */
  time: string;
  /** Its severity. */
  level: LogLevel;
  /** The part of the node that said it. */
  component: string;
  /** The line itself. */
  msg: string;
}

/** A leading `word:` (or `word/word:`) that names the speaker of a line. */
const COMPONENT = /^\s*([a-z][a-z0-9_/-]{1,24}):\s/;
/**
 * Leading words that say what kind of line it is, not who says it (`error: the node did not
 * start: …`, `try: deno run …`): such a line is the node's own.
 */
const NOT_SPEAKERS: ReadonlySet<string> = new Set([
  "error",
  "fatal",
  "warning",
  "warn",
  "interrupted",
  "try",
  "hint",
  "note",
  "usage",
]);
/** Words that make a line a warning or an error, when the node says them. */
const ERROR_WORDS = /^\s*(error|fatal|forced exit)\b|\b(crashed|gave up|escalated)\b/i;
const WARN_WORDS = /^\s*(warning|interrupted)\b|\b(failed|refused|restarted|restarting)\b/i;
/**
 * A part of a line in double quotes, as `JSON.stringify` writes a string (its `\"` inside):
 * words a line quotes are someone else's (a peer's refusal reason, an actor's name), so they
 * do not set its level (review s76 F4: a peer's "crashed … gave up" made the node's line an
 * `error`, which a collector pages on). Text that comes from a peer is quoted where it enters
 * the node's sentences, with `JSON.stringify` (`protocols/session_handshake.ts`: a refusal's
 * reason), so its own quotes cannot end the quoted part early. One not closed (cut to a length)
 * runs to the line's end.
 */
const QUOTED = /"(?:[^"\\]|\\[\s\S]?)*(?:"|$)/g;

/**
 * Characters neither form may write as they are, past those JSON escapes itself: DEL, the C1
 * controls, the Unicode line separators, the bidirectional marks, overrides and isolates (which
 * reorder what is shown: U+061C, U+200E/U+200F, U+202A–U+202E, U+2066–U+2069), the zero-width
 * characters (which hide text: U+200B–U+200D, U+FEFF; but the joiners inside a word, which are
 * writing: `word_joiners.ts`), and lone UTF-16 surrogates (no character at all; a terminal shows
 * them as it likes). Review s74 F6: the zero-width ones, U+061C and lone
 * surrogates went through raw. One list, read by both patterns below and by `/metrics`' label
 * escape (`server/metrics_registry.ts`), so the forms cannot differ. The body of a character
 * class (`[${HIDDEN}]`), for a `u` pattern.
 */
export const HIDDEN: string =
  "\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069\\ufeff" +
  "\\ud800-\\udfff"; // in a `u` pattern, only a surrogate not in a pair matches this range

/**
 * Characters a text line must not carry as they are: the C0 controls but the tab (a newline or
 * carriage return starts what looks like a line of the node's own, an escape sequence recolours,
 * moves the cursor or clears the operator's terminal), and {@link HIDDEN}. Peers' words reach the
 * log (a refusal, an error's message), so they are shown escaped, in one place: here.
 */
const UNPRINTABLE = new RegExp(`[\\x00-\\x08\\x0a-\\x1f${HIDDEN}]`, "gu");

/**
 * `char`, found at `at` in `whole`, written out: `\n`, `\r`, else `\xNN` or `\uNNNN`; a joiner
 * inside a word is kept ({@link joinsWord}).
 */
function escaped(char: string, at: number, whole: string): string {
  if (joinsWord(whole, at)) return char;
  if (char === "\n") return "\\n";
  if (char === "\r") return "\\r";
  const code = char.charCodeAt(0);
  return code < 0x100
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
}

/**
 * `line` as one line of text: every {@link UNPRINTABLE} character inside it escaped (but a joiner
 * inside a word), so one log call is one line whatever a peer put in it. Newlines that lead or end it stay: they are the
 * node's blank lines around a section.
 */
export function printableLine(line: string): string {
  const lead = /^\n*/.exec(line)![0].length;
  const body = line.slice(lead).replace(/\n+$/, "");
  const trail = line.length - lead - body.length;
  return "\n".repeat(lead) + body.replace(UNPRINTABLE, escaped) + "\n".repeat(trail);
}

/**
 * The structured form of `line`. Its level is `level` when given, else guessed from the
 * node's own words: {@link ERROR_WORDS}, then {@link WARN_WORDS}, outside its quoted parts.
 */
export function logRecord(line: string, level?: LogLevel, now: Date = new Date()): LogRecord {
  const trimmed = line.replace(/^\n+|\n+$/g, "");
  const speaker = COMPONENT.exec(trimmed)?.[1];
  const component = speaker === undefined || NOT_SPEAKERS.has(speaker) ? "node" : speaker;
  const own = trimmed.replace(QUOTED, '""');
  const guessed: LogLevel = ERROR_WORDS.test(own)
    ? "error"
    : WARN_WORDS.test(own)
    ? "warn"
    : "info";
  return { time: now.toISOString(), level: level ?? guessed, component, msg: trimmed };
}

/**
 * A log function writing in `format` through `write`.
 *
 * @param format `text` or `json`.
 * @param write Where finished lines go (stdout, stderr, a test's array).
 * @param level Force this level (stderr's lines are errors); default: guessed from the words.
 * @param now The clock (tests pass a fixed one).
 */
export function lineLogger(
  format: LogFormat,
  write: (line: string) => void,
  level?: LogLevel,
  now: () => Date = () => new Date(),
): (line: string) => void {
  if (format === "text") return (line) => write(printableLine(line));
  return (line) => write(printableJson(logRecord(line, level, now())));
}

/**
 * The characters of {@link UNPRINTABLE} that `JSON.stringify` leaves as they are: {@link HIDDEN}
 * (it escapes the C0 controls, and lone surrogates, itself).
 */
const UNESCAPED_BY_JSON = new RegExp(`[${HIDDEN}]`, "gu");

/**
 * `value` as JSON (indented by `indent` spaces, else on one line) with every {@link UNPRINTABLE}
 * character escaped (`\u202e`; but a joiner inside a word, {@link joinsWord}), so a peer's words reorder nothing on a terminal that shows it
 * (the JSON log through `tail -f` or `jq`, `cli status --json`) and end no line for a reader that
 * splits at U+2028; the JSON reads back the same. Outside its strings JSON is ASCII, and
 * `JSON.stringify` escapes the C0 controls and lone surrogates itself.
 *
 * @example
 * ```ts
 * import { printableJson } from "./log_format.ts";
 * printableJson({ version: "1\u202e0" }); // '{"version":"1\\u202e0"}'
 * ```
 */
export function printableJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(
    UNESCAPED_BY_JSON,
    (char, at: number, whole: string) =>
      joinsWord(whole, at) ? char : `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
