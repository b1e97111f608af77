/**
 * An app whose inference port records each job it is given and refuses it (429
 * `too_many_jobs`): a request that became a job answers 429, one refused at the edge its 400,
 * and the job shows what the request asked for.
 */
import { VeriflowError } from "../../protocols/errors.ts";
import type { TextJob } from "../../protocols/job.ts";
import type {
  InferencePort,
  InferenceStats,
  ServedModelInfo,
} from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";

const LOOPBACK = { transport: "tcp", hostname: "127.0.0.1", port: 40000 } as const;

/** The jobs made so far, and a chat and a completions request (status and error body). */
export function recordingApp(model: ServedModelInfo) {
  const jobs: TextJob[] = [];
  const port: InferencePort = {
    submit: (job: TextJob) => {
      jobs.push(job);
      return Promise.reject(new VeriflowError("too_many_jobs", "recorded"));
    },
    models: () => Promise.resolve([model]),
    stats: () => Promise.resolve({} as InferenceStats),
  };
  const app = createApp({ inference: port });
  const post = async (path: string, body: Record<string, unknown>) => {
    const response = await app.fetch(
      new Request(`http://127.0.0.1/v1/${path}`, { method: "POST", body: JSON.stringify(body) }),
      { remoteAddr: LOOPBACK },
    );
    const json = await response.json();
    return { status: response.status, error: json.error };
  };
  return {
    jobs,
    chat: (body: Record<string, unknown>) =>
      post("chat/completions", { messages: [{ role: "user", content: "Hi" }], ...body }),
    completions: (body: Record<string, unknown>) => post("completions", { prompt: "Hi", ...body }),
  };
}
