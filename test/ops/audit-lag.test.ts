/**
 * LlmGatewayAuditDurabilityLag against a real Prometheus: extproc configured to fsync nothing until shutdown
 * (EXTPROC_AUDIT_FSYNC_MS=0) keeps every audit record waiting for one, which is what a stalled audit disk
 * looks like to it. Before any record, the lag is 0 and the alert silent; once one waits, the lag (time since
 * the last fsync that succeeded began, here start-up) passes the alert's 30 s and it fires (`for:` 1 s, monitored.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DEMO_KEYS, waitFor } from "../harness/index.js";
import { JOBS } from "../../deploy/render/index.js";
import { startMonitored, type Monitored } from "./monitored.js";

const LAG_SERIES = "llm_gateway_audit_durability_lag_seconds";
let monitored: Monitored;

describe("audit records that never reach the disk", () => {
  before(async () => {
    monitored = await startMonitored({ extprocEnv: { EXTPROC_AUDIT_FSYNC_MS: "0" } });
  });
  after(async () => {
    await monitored?.stop();
  });

  it("fire LlmGatewayAuditDurabilityLag once no fsync has succeeded for 30 s while one waits; with none written it stays silent", async () => {
    const { prometheus, chat, alertsNamed, firing } = monitored;
    // Nothing written yet: time alone is no lag (Prometheus' first scrapes come a few seconds after it starts).
    await waitFor(
      "extproc scraped three times",
      async () => (await prometheus.query(`count_over_time(${LAG_SERIES}[1m])`))[0]?.value[1] === "3",
    );
    assert.deepEqual(
      (await prometheus.query(`max_over_time(${LAG_SERIES}[1m])`)).map((s) => s.value[1]),
      ["0"],
    );
    assert.deepEqual(await alertsNamed("LlmGatewayAuditDurabilityLag"), []);
    assert.equal(await chat(DEMO_KEYS.research, "llama-3.1-8b-instruct"), 200);
    const alert = await firing("LlmGatewayAuditDurabilityLag", { job: JOBS.extproc }, 60_000);
    assert.equal(alert.labels.severity, "critical");
    assert.ok(Number((await prometheus.query(LAG_SERIES))[0]!.value[1]) > 30);
  });
});
