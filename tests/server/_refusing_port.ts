/**
 * An inference port that refuses jobs, for the tests of what a refusal costs an API key
 * (`file_routes_test.ts`, `job_failures_test.ts`, `healthz_test.ts`).
 */
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
} from "../../inference/inference_port.ts";
import type { Hono } from "hono";
import type { EdgeEnv } from "../../server/client_access.ts";

/** The one model the port serves. */
export const REFUSING_PORT_MODEL = { cid: "bafkmodel", name: "m", kind: "text" } as const;

/** A handle for a job that runs until the test ends. */
export function runningHandle(): InferenceHandle {
  return {
    jobId: "ab".repeat(32),
    promptTokens: 1,
    done: new Promise(() => {}),
  } as unknown as InferenceHandle;
}

/**
 * A port that refuses every job with what `refusal()` gives, and starts it (a job that runs until
 * the test ends) when that is undefined.
 */
export function refusingPort(refusal: () => Error | undefined): InferencePort {
  return {
    submit: () => {
      const error = refusal();
      return error === undefined ? Promise.resolve(runningHandle()) : Promise.reject(error);
    },
    models: () => Promise.resolve([REFUSING_PORT_MODEL] as never),
    stats: () => Promise.resolve({} as InferenceStats),
  };
}

/**
 * The error codes of `tries` completions a client with API key `key` posts to `app` from a
 * remote address, one after another.
 */
export async function codesOfRetries(
  app: { fetch: Hono<EdgeEnv>["fetch"] },
  key: string,
  tries = 5,
): Promise<string[]> {
  const codes: string[] = [];
  for (let i = 0; i < tries; i++) {
    const response = await app.fetch(
      new Request("http://127.0.0.1/v1/completions", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          host: "127.0.0.1",
          authorization: `Bearer ${key}`,
        },
        body: JSON.stringify({ model: REFUSING_PORT_MODEL.name, prompt: "hi", max_tokens: 1 }),
      }),
      { remoteAddr: { transport: "tcp", hostname: "203.0.113.9", port: 1 } },
    );
    codes.push((await response.json()).error?.code);
  }
  return codes;
}
