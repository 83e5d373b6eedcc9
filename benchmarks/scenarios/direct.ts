/**
 * Row "direct model server": the demo model server called directly, no proxy at all (the floor). It speaks
 * every API natively, so a translated mode's request (pool-b's model) is answered natively here.
 */
import type { Scenario } from "../lib/scenario.js";

export const direct: Scenario = {
  id: "direct",
  label: "direct model server",
  description: "the demo model server itself, no proxy (every row sends to this one server)",
  unavailable: () => undefined,
  start: async (env) => ({
    origin: `http://127.0.0.1:${env.modelServerPort}`,
    proxies: [],
    check: async () => [],
    stop: async () => {},
  }),
};
