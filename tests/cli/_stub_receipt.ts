/**
 * Test fixture: the text a stub node streams for `infer --receipt-out` (`framesServer`) and a
 * receipt signing that text for the stub's job, shared by the receipt-out tests.
 *
 * @module
 */
import { Identity } from "../../protocols/identity.ts";
import { DEFAULT_GENERATION_PARAMS } from "../../protocols/job.ts";
import { signReceipt, textOutputHash } from "../../protocols/receipt.ts";
import { toJsonValue } from "../../server/json_value.ts";
import { doneFrame, framesServer, startFrame, tokenFrame } from "../client/_stub_servers.ts";

/** The tokens' texts the stub streams. */
export const TEXTS = ["w", " th"];

/** A receipt signing the stub's text for the stub's job (max tokens 8). */
export function receipt(): unknown {
  return toJsonValue(signReceipt({
    v: 1,
    kind: "text",
    jobId: String(startFrame("x").job_id),
    model: String(startFrame("x").model),
    inputHash: "01".repeat(32),
    params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: 8 },
    outputHash: textOutputHash(TEXTS.join("")),
    commitment: { scheme: "vf-fp1", root: "02".repeat(32), chunkSize: 16, tokenBytes: 2 },
    tokenCount: TEXTS.length,
    timings: { startedAt: 0, firstTokenMs: 1, totalMs: 2 },
  }, Identity.generate()));
}

/**
 * A stub node streaming {@link TEXTS} and ending with `signed` as the receipt; `onJob` runs when a
 * job arrives, before its frames are sent.
 */
export function receiptServer(
  signed: unknown,
  onJob: () => void = () => {},
): Deno.HttpServer<Deno.NetAddr> {
  return framesServer((id) => {
    onJob();
    return [
      startFrame(id),
      ...TEXTS.map((text, index) => tokenFrame(id, index, text)),
      { ...doneFrame(id, TEXTS.length), receipt: signed },
    ];
  });
}
