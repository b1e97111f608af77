/**
 * Review s61 (ops2, S2): a worker logged nothing for the jobs it served to peers. Its heartbeat
 * counted them (`1 done · tokens 24`), but no line named a job, the peer it ran for, or whether
 * a receipt was signed. `serveInference` now writes one line per peer job when it ends, in the
 * shape of the edge's lines: `job <id12> served for peer <key16>: <finish> after N tokens in T ms,
 * receipt signed`.
 */
import assert from "node:assert/strict";
import type { InferenceHandle } from "../../inference/inference_port.ts";
import { RemoteInferencePort } from "../../inference/remote_port.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { eventually } from "../_helpers/wait.ts";
import { job, TwoTokenWorker } from "../network/_router_fixture.ts";

/** A two-token worker whose summary carries a (stand-in) receipt. */
class SigningWorker extends TwoTokenWorker {
  constructor() {
    super(false, "", "");
  }
  override async submit(j: TextJob): Promise<InferenceHandle> {
    const handle = await super.submit(j);
    const done = handle.done.then((s) => ({ ...s, receipt: { stand_in: true } }));
    return { ...handle, done };
  }
}

/** Serve `worker` to a requester over memory; the worker's log lines in `lines`. */
async function served(worker: TwoTokenWorker) {
  const lines: string[] = [];
  const requester = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: requester, protocols }),
    Connection.open(b, { identity: Identity.generate(), protocols }),
  ]);
  serveInference(atWorker, worker, { log: (line) => lines.push(line) });
  const port = new RemoteInferencePort(toWorker);
  const close = async () => {
    await toWorker.close();
    await atWorker.close();
  };
  return { lines, port, requester: toHex(requester.publicKey), close };
}

Deno.test("review s61 ops2: a worker logs one line per job it served a peer, naming the job, the peer and the receipt", async () => {
  const node = await served(new SigningWorker());
  try {
    const j = job("served-1");
    const handle = await node.port.submit(j);
    for await (const _ of handle.tokens) { /* drain */ }
    await handle.done;
    const line = await eventually(
      () => node.lines.find((l) => l.includes("served for peer")),
      "the served line",
    );
    assert.match(
      line,
      new RegExp(
        `^job ${jobId(j).slice(0, 12)} served for peer ${
          node.requester.slice(0, 16)
        }: length after 2 tokens in \\d+ ms, receipt signed$`,
      ),
    );
    assert.equal(node.lines.length, 1, `one line per job, got:\n${node.lines.join("\n")}`);
  } finally {
    await node.close();
  }
});

Deno.test("review s61 ops2: a served job that ended without a receipt says so", async () => {
  const node = await served(new TwoTokenWorker(false, "", ""));
  try {
    const handle = await node.port.submit(job("served-2"));
    for await (const _ of handle.tokens) { /* drain */ }
    await handle.done;
    const line = await eventually(
      () => node.lines.find((l) => l.includes("served for peer")),
      "the served line",
    );
    assert.match(line, /: length after 2 tokens in \d+ ms, without a receipt$/);
  } finally {
    await node.close();
  }
});
