/**
 * How many tokens a text job may generate: the node's default and its most. In a file of their
 * own, importing nothing, so that the streaming client (`client/`, which loads with
 * `--allow-net` alone) bounds a job by the very numbers the node does, without loading
 * `protocols/job.ts` (zod and cbor-x, which reads the environment as it loads).
 *
 * @module
 */

/**
 * New tokens of a job whose request gives no `max_tokens` (or `null`): `DEFAULT_GENERATION_PARAMS`
 * in `protocols/job.ts`, which every edge fills in.
 */
export const DEFAULT_MAX_TOKENS = 64;

/**
 * Most new tokens per job (`GENERATION_LIMITS.maxTokens`; a request for more gets this many).
 * Above every context window the node builds (256 and 512 tokens) and common small models'
 * (2k–4k), so only the model's context cuts a job short; it also bounds what a lagging prover may
 * have to buffer (one logits row per token) before the model does.
 */
export const MAX_JOB_TOKENS = 4096;
