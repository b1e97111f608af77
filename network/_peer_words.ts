/**
 * A peer's words inside the node's own log lines. The JSON log guesses a line's level from its
 * words but not from its quoted parts (`node/log_format.ts`), so a peer's text is quoted where it
 * enters a line, as `JSON.stringify` writes a string (its own quotes cannot end the quoted part
 * early): a goodbye reason, a refusal or an error reply that says "crashed" or "gave up" no longer
 * makes the node's line an `error`, which a collector pages on (review s77 vstr F2).
 *
 * @module
 */
import { RemoteError } from "../protocols/protocol_errors.ts";

/** `text`, a peer's, quoted for a log line. */
export function peerWords(text: string): string {
  return JSON.stringify(text);
}

/**
 * `error` as a log line says it: a peer's error reply ({@link RemoteError}: its code and message
 * are the peer's choice) quoted, this node's own error (a closed connection, a timeout) as it is,
 * since its words are the node's and may rightly set the level.
 */
export function errorWords(error: unknown): string {
  if (error instanceof RemoteError) {
    return `the peer answered ${peerWords(`${error.code}: ${error.message}`)}`;
  }
  return error instanceof Error ? error.message : String(error);
}
