/**
 * The longest request id of the WebSocket streaming API (`/v1/stream`), shared by the node's edge,
 * which refuses a longer one (`server/request_schemas.ts`), and the streaming client, which
 * refuses it before sending (`client/stream_client.ts`). In a file of its own, importing nothing:
 * the client loads with `--allow-net` alone and must not load the edge's schemas (zod).
 *
 * @module
 */

/**
 * Longest request id, in characters (UTF-16 code units, as a string's `length` counts them). An
 * id names a job in every frame of it, so it is kept short; one over it is no request's, and the
 * node's refusal does not echo it (review s79 F3).
 *
 * @example
 * ```ts
 * import { MAX_REQUEST_ID_CHARS } from "./stream_request_id.ts";
 * "r1".length <= MAX_REQUEST_ID_CHARS; // true
 * ```
 */
export const MAX_REQUEST_ID_CHARS = 128;
