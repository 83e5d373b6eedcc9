/**
 * Row "LiteLLM": LiteLLM's proxy (Python; scripts/install-peers.sh pins the version), one worker, with the
 * demo model server as an OpenAI-compatible backend serving the same model. Skipped when not installed.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { freePort } from "../../test/harness/index.js";
import { notInstalled, peerExecutable } from "../lib/peers.js";
import { BENCH_KEY, MODEL, sendOnce } from "../lib/request.js";
import type { Scenario } from "../lib/scenario.js";
import { answers, startProcess } from "../lib/stacks.js";

const EXECUTABLE = "litellm/bin/litellm";
const NOT_CONFIGURED =
  "this row's LiteLLM config and check cover chat completions only (its /v1/responses and /v1/messages bridging is not set up here)";

export const litellm: Scenario = {
  id: "litellm",
  label: "LiteLLM",
  description: `LiteLLM's proxy, 1 worker, model ${MODEL} as openai/${MODEL} at the demo model server, the benchmark key as its master key`,
  unavailable: () => (peerExecutable(EXECUTABLE) ? undefined : notInstalled("LiteLLM", EXECUTABLE)),
  unsupported: { responses: NOT_CONFIGURED, messages: NOT_CONFIGURED },
  start: async (env) => {
    const port = await freePort();
    const config = path.join(env.workDir, "litellm.yaml");
    // JSON is YAML: the config LiteLLM reads.
    const settings = {
      model_list: [
        {
          model_name: MODEL,
          litellm_params: {
            model: `openai/${MODEL}`,
            api_base: `http://127.0.0.1:${env.modelServerPort}/v1`,
            api_key: "unused",
          },
        },
      ],
      // Its own check of the caller's key, as our gateway checks one (no database: the master key only).
      general_settings: { master_key: BENCH_KEY },
    };
    writeFileSync(config, JSON.stringify(settings, null, 2));
    const args = ["--config", config, "--host", "127.0.0.1", "--port", String(port), "--num_workers", "1"];
    const proxy = await startProcess(
      env,
      "litellm",
      peerExecutable(EXECUTABLE)!,
      args,
      // Its bundled model price map, not a download at start-up. Offline Hugging Face hub: LiteLLM counts
      // a streamed answer's tokens with the model's tokenizer, and without the hub reachable each lookup
      // would wait for its timeout (seconds per request); offline it falls back to tiktoken at once, and
      // LITELLM_LOG=ERROR keeps the warning it logs about that on every request out.
      {
        pin: true,
        env: { LITELLM_LOCAL_MODEL_COST_MAP: "True", HF_HUB_OFFLINE: "1", LITELLM_LOG: "ERROR" },
        timeoutMs: 120_000,
      },
      answers(`http://127.0.0.1:${port}/health/liveliness`),
    );
    const origin = `http://127.0.0.1:${port}`;
    return {
      origin,
      proxies: [{ label: "litellm", pid: proxy.pid }],
      // Its key check is on: a request with another key is refused (without a database LiteLLM cannot look
      // other keys up and answers 400 no_db_connection; with one, 401).
      check: async () => {
        const res = await sendOnce(origin, "chat", { authorization: "Bearer sk-not-the-key" });
        return res.status >= 400 && res.status < 500
          ? []
          : [`a request with a wrong key got HTTP ${res.status}, expected a refusal (4xx)`];
      },
      stop: () => proxy.stop(),
    };
  },
};
