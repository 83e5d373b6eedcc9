/** Row "direct model server": the demo model server called directly, no proxy at all (the floor). */
import { BASE_HEADERS, CHAT_PATH } from "../lib/request.js";
import type { Scenario } from "../lib/scenario.js";

export const direct: Scenario = {
  id: "direct",
  label: "direct model server",
  description: "the demo model server itself, no proxy (every row sends to this one server)",
  unavailable: () => undefined,
  start: async (env) => ({
    url: `http://127.0.0.1:${env.modelServerPort}${CHAT_PATH}`,
    headers: BASE_HEADERS,
    proxies: [],
    check: async () => [],
    stop: async () => {},
  }),
};
