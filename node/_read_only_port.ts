/**
 * The node's inference port while its disk is full: a job that signs a receipt writes it to the
 * ledger, so while the node is read-only (`disk_room.ts`) it is refused before it starts, with the
 * store's `disk_full` (507), not computed and then left without a receipt. Models and stats are
 * served as ever. Used by `node.ts` for the clients' and the peers' jobs alike. Not part of the
 * public API.
 *
 * @module
 */
import type { InferencePort } from "../inference/inference_port.ts";
import type { DiskRoom } from "./disk_room.ts";

/** `port`, whose submits are refused while `disk` is read-only (`disk` undefined: `port`). */
export function refusingWhileReadOnly(
  port: InferencePort,
  disk: DiskRoom | undefined,
): InferencePort {
  if (disk === undefined) return port;
  return {
    submit: async (job, options) => {
      const refused = await disk.refusal();
      if (refused !== undefined) throw refused;
      return await port.submit(job, options);
    },
    models: () => port.models(),
    stats: () => port.stats(),
  };
}
