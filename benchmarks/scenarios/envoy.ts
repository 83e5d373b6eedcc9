/**
 * Row "envoy alone": Envoy with the rendered envoy/envoy.yaml minus the ext_proc filter (the baseline).
 * Nothing translates without extproc: a translated mode's request is forwarded as is to pool-b's cluster,
 * whose server (the one demo model server) answers it natively.
 */
import { modeSpec } from "../lib/request.js";
import { startGateway } from "../lib/stacks.js";
import type { Scenario } from "../lib/scenario.js";

export const envoy: Scenario = {
  id: "envoy",
  label: "envoy alone",
  description:
    "envoy/envoy.yaml without the ext_proc filter; the routes pick the pool by header (pool-b for translated modes, forwarded untranslated)",
  unavailable: () => undefined,
  start: async (env) => {
    const { stack, proxies } = await startGateway(env, undefined);
    return {
      origin: `http://127.0.0.1:${stack.ports.http}`,
      // Without extproc nothing picks the pool, and the routes match on this header only.
      headers: (mode) => ({ "x-gateway-pool": modeSpec(mode).translated ? "pool-b" : "pool-a" }),
      proxies,
      check: async () => [],
      stop: () => stack.stop(),
    };
  },
};
