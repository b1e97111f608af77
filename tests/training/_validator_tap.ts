/**
 * A TrainingValidator seen through a tap, for the tests that stop a RoundCoordinator at a given
 * point of a round: the coordinator talks to the tap, which forwards every message to the real
 * validator and records the credits and outcomes the coordinator sent. It can hold one credit
 * after the ledger took it — the point where a coordinator has paid and not yet announced.
 */
import type { Actor, ActorContext } from "../../actors/actor.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import type { TrainingValidatorMessage } from "../../training/training_validator.ts";

/** See the module doc. */
export class ValidatorTap implements Actor<TrainingValidatorMessage> {
  /** The outcomes the coordinator sent, in order. */
  readonly outcomes: OutcomeBody[] = [];
  /** The rounds of the credits the coordinator asked for, in order. */
  readonly credits: number[] = [];
  readonly #real: string;
  #hold?: { reached: PromiseWithResolvers<void>; release: Promise<void> };

  /** @param real Registry name of the real TrainingValidator. */
  constructor(real: string) {
    this.#real = real;
  }

  /**
   * Hold the next credit once the ledger has taken it, until `release` settles.
   * @returns Resolves when that credit is held.
   */
  holdNextCredit(release: Promise<void>): Promise<void> {
    const reached = Promise.withResolvers<void>();
    this.#hold = { reached, release };
    return reached.promise;
  }

  /** Record, forward, answer what the real validator answers. */
  async receive(
    message: TrainingValidatorMessage,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<unknown> {
    if (message.type === "outcome") this.outcomes.push(message.body);
    const answer = await ctx.system.lookup<TrainingValidatorMessage>(this.#real)!.ask(message);
    if (message.type === "credit") {
      this.credits.push(message.terms.round);
      const hold = this.#hold;
      this.#hold = undefined;
      if (hold !== undefined) {
        hold.reached.resolve();
        await hold.release;
      }
    }
    return answer;
  }
}
