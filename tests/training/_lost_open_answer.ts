/**
 * Test stand-ins for a training challenge whose "open" ask fails after the ledger took it: a
 * proxy in front of the ValidatorActor that passes every ask on but its first `open` only as a
 * tell (its answer lost, as with an ask past its timeout), and a trainer connection that answers
 * every challenge with `{}` (the injected step check decides).
 *
 * @module
 */
import type { Actor } from "../../actors/actor.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { encodeCbor } from "../../protocols/cbor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { sha256Hex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";

/** Passes every ask on to the ledger actor `ledger`, but the first `open` only as a tell. */
export class LosesOpenAnswer implements Actor<ValidatorMessage> {
  /** Opens whose answer was lost (1 after the first). */
  lost = 0;

  /** @param ledger The ledger actor's registry name. */
  constructor(readonly ledger: string) {}

  /** Pass `message` on; the first `open`'s answer is lost. */
  receive(message: ValidatorMessage, ctx: { system: ActorSystem }): Promise<unknown> {
    const ledger = ctx.system.lookup<ValidatorMessage>(this.ledger)!;
    const open = message.type === "training_challenge" && message.step === "open";
    if (open && this.lost++ === 0) {
      return ledger.tell(message).then(() => {
        throw new Error("the open's answer was lost (an ask timeout)");
      });
    }
    return ledger.ask(message);
  }
}

/** A connection that answers every challenge with `{}` (the injected check decides). */
export function answeringConnection(): Connection {
  const body = encodeCbor({});
  return {
    peerKey: Identity.generate().publicKey,
    request: (_type: unknown, payload: { challenge?: unknown }) =>
      Promise.resolve(
        payload.challenge !== undefined
          ? { size: body.length, parts: 1, sha256: sha256Hex(body) }
          : { bytes: body },
      ),
  } as unknown as Connection;
}
