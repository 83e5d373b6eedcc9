import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createMetrics, registerAuditDurabilityLag } from "./index.js";

describe("metrics", () => {
  it("reads the audit durability lag at each scrape", async () => {
    const { registry } = createMetrics();
    let lag = 0;
    registerAuditDurabilityLag(registry, () => lag);
    const scraped = async () =>
      (await registry.metrics())
        .split("\n")
        .find((l) => l.startsWith("llm_gateway_audit_durability_lag_seconds "));
    assert.equal(await scraped(), "llm_gateway_audit_durability_lag_seconds 0");
    lag = 2.5;
    assert.equal(await scraped(), "llm_gateway_audit_durability_lag_seconds 2.5");
  });

  it("exports both policy reload results from the start, so the first failure is an increase", async () => {
    const { registry } = createMetrics();
    const text = await registry.getSingleMetricAsString("llm_gateway_policy_reloads_total");
    assert.match(text, /^llm_gateway_policy_reloads_total\{result="success"\} 0$/m);
    assert.match(text, /^llm_gateway_policy_reloads_total\{result="failure"\} 0$/m);
  });
});
