/**
 * How often a node repeats an unchanged `queued` place, in a file of its own that imports
 * nothing, so the streaming client (`client/`, which must not load zod or cbor-x: see
 * `job_token_bounds.ts`) knows how long an honest node stays silent about a queued job.
 *
 * @module
 */

/**
 * How often a worker (and the WebSocket edge) repeats an unchanged `queued` event: well within the
 * requester's stall timeout (60 s by default), so a job queued behind jobs the requester cannot
 * see is not taken for a stalled one.
 */
export const QUEUED_EVENT_REPEAT_MS = 10_000;
