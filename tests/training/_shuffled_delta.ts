/**
 * The lazy trainer of the training tests: instead of its pseudo-gradient it sends a random
 * delta scaled like an honest one (each row's int8 values shuffled), under a receipt re-signed
 * for it. Everything else (the trace it opens steps from) is honest, so what gives it away is
 * the last step's opening: the committed end state does not match the delta sent. Lives in
 * tests/: no production flag can make a node lie.
 */
import { decodeInt8Delta, deltaHash, encodeInt8Delta } from "../../training/int8_delta.ts";
import { signTrainingReceipt, type TrainingReceipt } from "../../training/training_receipt.ts";
import { trainAndSign } from "../../training/training_round.ts";
import type { TrainFunction } from "../../training/trainer_service.ts";

/** Trains honestly, then sends a shuffled delta under a re-signed receipt. */
export const shuffledDeltaTrainer: TrainFunction = async (options) => {
  const honest = await trainAndSign(options);
  const tensors = decodeInt8Delta(honest.report.delta);
  for (const t of tensors) {
    // Same magnitudes, no information: a Fisher–Yates shuffle of the quantised values.
    for (let i = t.values.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [t.values[i], t.values[j]] = [t.values[j], t.values[i]];
    }
  }
  const delta = encodeInt8Delta(tensors);
  const { sig: _sig, trainer: _trainer, ...unsigned } = honest.report.receipt;
  const receipt: TrainingReceipt = signTrainingReceipt(
    { ...unsigned, deltaHash: deltaHash(delta), deltaBytes: delta.length },
    options.identity,
  );
  console.log("lazy trainer: sent a shuffled delta under a re-signed receipt");
  return { report: { receipt, delta }, trace: { ...honest.trace, receipt } };
};
