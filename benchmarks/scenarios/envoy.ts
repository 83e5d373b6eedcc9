/** Row "envoy alone": Envoy with the rendered envoy/envoy.yaml minus the ext_proc filter (the baseline). */
import { BASE_HEADERS, CHAT_PATH } from "../lib/request.js";
import { startGateway } from "../lib/stacks.js";
import type { Scenario } from "../lib/scenario.js";

export const envoy: Scenario = {
  id: "envoy",
  label: "envoy alone",
  description: "envoy/envoy.yaml without the ext_proc filter; the routes pick pool-a by header",
  unavailable: () => undefined,
  start: async (env) => {
    const { stack, proxies } = await startGateway(env, undefined);
    return {
      url: `http://127.0.0.1:${stack.ports.http}${CHAT_PATH}`,
      // Without extproc nothing picks the pool, and the routes match on this header only.
      headers: { ...BASE_HEADERS, "x-gateway-pool": "pool-a" },
      proxies,
      check: async () => [],
      stop: () => stack.stop(),
    };
  },
};
