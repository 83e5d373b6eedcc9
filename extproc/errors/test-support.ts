/** Unit-test support (imported by tests only): the GatewayError a call refuses with. */
import assert from "node:assert/strict";
import { GatewayError } from "./index.js";

/** The GatewayError `run` throws; fails with `accepted` when it returns, or when it throws anything else. */
export function gatewayErrorOf(run: () => unknown, accepted = "the call was accepted"): GatewayError {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof GatewayError, `expected a GatewayError, got ${String(err)}`);
    return err;
  }
  assert.fail(accepted);
}

/** The GatewayError `promise` rejects with; fails with `accepted` when it resolves, or on any other error. */
export async function gatewayRejectionOf(
  promise: Promise<unknown>,
  accepted = "the call was accepted",
): Promise<GatewayError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof GatewayError, `expected a GatewayError, got ${String(err)}`);
    return err;
  }
  assert.fail(accepted);
}
