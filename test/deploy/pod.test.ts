/**
 * The Kubernetes pod as kustomize renders it, run on this machine (rendered-pod.ts, local-gateway.ts): a real
 * Envoy with the pod's flags and bootstrap, extproc with the pod's environment and policy listening on a Unix
 * socket as in the pod, demo model servers standing in for the pools, and the preStop script
 * deploy/kubernetes/base/drain.sh draining it.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { DEMO_KEYS, waitFor } from "../harness/index.js";
import { childEnv, launch } from "../harness/children.js";
import { parseChatStream } from "../harness/sse.js";
import { POD, ROOT } from "../../deploy/render/index.js";
import { describeLocalGateway } from "./local-gateway.js";
import { localPodOptions } from "./rendered-pod.js";
import { kustomizeBuild } from "./tools.js";

describeLocalGateway(
  "the Kubernetes pod (kustomize build deploy/kubernetes) run locally: Envoy and extproc over the Unix socket",
  localPodOptions(kustomizeBuild("deploy/kubernetes"), "llm-gateway"),
  (gateway) => {
    test("drain.sh: readiness fails, a stream in flight finishes, the hooks return once it has", async () => {
      const tokens = 25;
      const started = Date.now();
      const res = await fetch(gateway.url("/v1/chat/completions"), {
        method: "POST",
        headers: {
          authorization: `Bearer ${DEMO_KEYS.research}`,
          "content-type": "application/json",
          "x-demo-token-delay-ms": "100",
        },
        body: JSON.stringify({
          model: "llama-3.1-8b-instruct",
          stream: true,
          max_tokens: tokens,
          // The demo server answers "This is <model> answering:" and echoes the prompt's words.
          messages: [{ role: "user", content: Array.from({ length: tokens }, (_, i) => `w${i}`).join(" ") }],
        }),
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      let body = new TextDecoder().decode((await reader.read()).value);

      // Both preStop hooks, as the kubelet runs them (concurrently), against this Envoy's admin.
      const hook = (mode: string) => {
        const env = childEnv({
          ENVOY_ADMIN_PORT: String(gateway.ports.admin),
          DRAIN_MIN_WAIT_S: "1",
          DRAIN_MAX_WAIT_S: "60",
        });
        const output: string[] = [];
        const drain = path.join(ROOT, "deploy/kubernetes/base/drain.sh");
        return launch(`preStop ${mode}`, "bash", [drain, mode], { env, output }).exited.then(({ code }) => ({
          code,
          at: Date.now(),
          output: output.join(""),
        }));
      };
      const envoyHook = hook("envoy");
      const extprocHook = hook("wait");

      await waitFor(
        "readiness to fail",
        async () => (await fetch(gateway.ops(POD.ops.ready))).status === 503,
        5_000,
      );
      // A late request (the endpoint removal has not reached every client yet) is still answered, told to close.
      const late = await fetch(gateway.url("/v1/models"), {
        headers: { authorization: `Bearer ${DEMO_KEYS.research}` },
      });
      assert.equal(late.status, 200);
      assert.equal(late.headers.get("connection"), "close");

      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        body += new TextDecoder().decode(value);
      }
      const finished = Date.now();
      assert.ok(finished - started >= 2_000, "the stream ran on while the pod drained");
      const stream = parseChatStream(body);
      assert.equal(stream.last, "[DONE]");
      // extproc's PII scan of the output regroups the chunks; the text must be whole.
      const echoed = Array.from({ length: tokens - 4 }, (_, i) => `w${i}`).join(" ");
      assert.equal(
        stream.content,
        `This is llama-3.1-8b-instruct answering: ${echoed}`,
        "every token arrived",
      );
      assert.deepEqual(stream.finishReasons, ["length"]);

      for (const result of [await envoyHook, await extprocHook]) {
        assert.equal(result.code, 0, result.output);
        assert.ok(result.at >= finished - 100, `a hook returned before the stream ended:\n${result.output}`);
        assert.match(result.output, /no request in flight/);
      }
      assert.match((await envoyHook).output, /readiness failed, listeners draining/);
    });
  },
);
