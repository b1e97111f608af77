/** What a dashboard page reading with an API key (not the operator) is sent about jobs. */
import assert from "node:assert/strict";
import { withoutJobText } from "../../server/dashboard_routes.ts";

Deno.test("a page reading with an API key gets every job's numbers but no job's text", () => {
  const job = {
    jobId: "j1",
    model: "tiny",
    promptTokens: 3,
    tokens: 2,
    text: "secret answer",
    submittedAt: 1,
    state: "streaming",
  };
  const snapshot = {
    type: "snapshot",
    tree: { name: "node", text: "the tree keeps its fields" },
    jobs: { active: [job], recent: [{ ...job, jobId: "j0", state: "stop" }] },
  };
  const seen = withoutJobText(snapshot) as typeof snapshot;
  assert.deepEqual(seen.jobs.active, [{ ...job, text: "" }]);
  assert.equal(seen.jobs.recent[0].text, "");
  assert.equal(seen.jobs.recent[0].tokens, 2);
  assert.equal(seen.tree.text, "the tree keeps its fields", "only jobs are blanked");
  assert.equal(snapshot.jobs.active[0].text, "secret answer", "the hub's copy is untouched");
  const token = { type: "job", event: { type: "job_token", jobId: "j1", index: 4, text: "x" } };
  assert.deepEqual(withoutJobText(token), {
    type: "job",
    event: { type: "job_token", jobId: "j1", index: 4, text: "" },
  });
  const ended = {
    type: "job",
    event: { type: "job_ended", job, summary: { finishReason: "stop" } },
  };
  assert.equal((withoutJobText(ended) as typeof ended).event.job.text, "");
  const other = { type: "lifecycle", event: { text: "kept" } };
  assert.equal(withoutJobText(other), other);
});
