import assert from "node:assert/strict";
import { BatchedPost, eachMessage } from "../../inference/_batched_post.ts";

/** A BatchedPost that records what it posts. */
function recording() {
  const posted: (string | string[])[] = [];
  const failed: string[] = [];
  const post = new BatchedPost<string>((message) => {
    if (message === "unsendable" || (Array.isArray(message) && message.includes("unsendable"))) {
      throw new DOMException("could not be cloned", "DataCloneError");
    }
    posted.push(message);
  }, (messages) => failed.push(...messages));
  return { posted, failed, post };
}

/** Until the microtasks queued so far (and those they queue) have run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("messages posted in one turn go as one array, in order, once the turn's microtasks ran", async () => {
  const { posted, post } = recording();
  post.post("a");
  post.post("b");
  assert.deepEqual(posted, [], "nothing posted synchronously");
  await settle();
  assert.deepEqual(posted, [["a", "b"]]);
  // Posted from the reactions to promises settled together (a tick answering its generations'
  // steps, or the replies to them arriving): the same checkpoint, so one message.
  const settlers: (() => void)[] = [];
  const answered = ["c", "d", "e"].map((m) =>
    new Promise<void>((resolve) => settlers.push(resolve)).then(() => post.post(m))
  );
  for (const answer of settlers) answer();
  await Promise.all(answered);
  await settle();
  assert.deepEqual(posted, [["a", "b"], ["c", "d", "e"]]);
  post.post("f");
  await settle();
  assert.deepEqual(posted, [["a", "b"], ["c", "d", "e"], "f"], "a message alone goes as itself");
});

Deno.test("flush posts what is queued at once, so a message sent around the queue keeps its place", async () => {
  const { posted, post } = recording();
  post.post("step 1");
  post.post("step 2");
  post.flush();
  posted.push("with transfer"); // what the caller then posts directly
  post.post("step 3");
  await settle();
  assert.deepEqual(posted, [["step 1", "step 2"], "with transfer", "step 3"]);
  post.flush();
  assert.equal(posted.length, 3, "flushing an empty queue posts nothing");
});

Deno.test("discard forgets what is queued", async () => {
  const { posted, post } = recording();
  post.post("to a worker that died");
  post.discard();
  await settle();
  assert.deepEqual(posted, []);
});

Deno.test("eachMessage reads a message alone or a batch", () => {
  assert.deepEqual(eachMessage({ op: "step" }), [{ op: "step" }]);
  assert.deepEqual(eachMessage([{ op: "step" }, { op: "drop" }]), [{ op: "step" }, { op: "drop" }]);
});

Deno.test("a post that throws reaches nobody: its messages are handed back, not lost in a microtask", async () => {
  const { posted, failed, post } = recording();
  post.post("a");
  post.post("unsendable");
  await settle();
  assert.deepEqual(posted, []);
  assert.deepEqual(failed, ["a", "unsendable"]);
  post.post("b");
  await settle();
  assert.deepEqual(posted, ["b"], "later posts go on");
});

Deno.test("a message with buffers to transfer goes at once, alone, after what is queued", () => {
  const posted: [string | string[], Transferable[] | undefined][] = [];
  const post = new BatchedPost<string>((m, t) => posted.push([m, t]), () => {});
  post.post("step 1");
  post.post("step 2");
  const buffer = new ArrayBuffer(8);
  post.post("forward", [buffer]);
  assert.deepEqual(posted, [[["step 1", "step 2"], undefined], ["forward", [buffer]]]);
});
