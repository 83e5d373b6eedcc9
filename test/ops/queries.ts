/**
 * The queries SREs would run, read from the committed files: every target of every Grafana dashboard under
 * deploy/grafana/ (with Grafana's variables given the values a dashboard has with "All" selected), the
 * dashboards' variable queries, and every rule of deploy/prometheus/alerts.yaml.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import * as yaml from "js-yaml";
import { OPS_FILES, ROOT } from "../../deploy/render/index.js";

/** A dashboard panel's query, named for messages. */
export interface DashboardQuery {
  readonly where: string;
  readonly expr: string;
}

/** A variable's `label_values(metric, label)` query. */
export interface VariableQuery {
  readonly where: string;
  readonly metric: string;
  readonly label: string;
}

/** A rule of the rules file, as Prometheus reads it. */
export interface Rule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
}

/**
 * Grafana's built-in and dashboard variables as a test Prometheus (1 s scrapes, minutes of data) needs them:
 * the rate interval Grafana would pick for a 15 s scrape, a range the test's traffic falls in, and "All"
 * (`.*`) for every label variable.
 */
const VARIABLES: ReadonlyArray<[RegExp, string]> = [
  [/\$__rate_interval/g, "1m"],
  [/\$__range/g, "5m"],
  [/\$(team|model|pool)\b/g, ".*"],
];

/** `expr` with Grafana's variables substituted; throws on one this list does not know. */
export function substitute(expr: string): string {
  const out = VARIABLES.reduce((text, [pattern, value]) => text.replace(pattern, value), expr);
  const unknown = /\$\{?\w+/.exec(out);
  if (unknown) throw new Error(`unknown Grafana variable ${unknown[0]} in ${expr}`);
  return out;
}

interface DashboardJson {
  readonly title: string;
  readonly templating: { readonly list: ReadonlyArray<{ name: string; type: string; definition?: string }> };
  readonly panels: ReadonlyArray<{ title: string; targets?: ReadonlyArray<{ refId: string; expr: string }> }>;
}

/** Every dashboard file under deploy/grafana/, parsed. */
export function dashboards(): Array<{ file: string; json: DashboardJson }> {
  const dir = path.join(ROOT, OPS_FILES.grafana);
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => ({ file, json: JSON.parse(readFileSync(path.join(dir, file), "utf8")) as DashboardJson }));
}

/** Every panel target of every dashboard, variables substituted. */
export function dashboardQueries(): DashboardQuery[] {
  return dashboards().flatMap(({ file, json }) =>
    json.panels.flatMap((panel) =>
      (panel.targets ?? []).map((t) => ({
        where: `${file}: "${panel.title}" ${t.refId}`,
        expr: substitute(t.expr),
      })),
    ),
  );
}

/** Every `label_values(metric, label)` variable of every dashboard. */
export function variableQueries(): VariableQuery[] {
  return dashboards().flatMap(({ file, json }) =>
    json.templating.list
      .filter((v) => v.type === "query")
      .map((v) => {
        const match = /^label_values\((\w+), (\w+)\)$/.exec(v.definition ?? "");
        if (!match) throw new Error(`${file}: variable ${v.name}: not a label_values(metric, label) query`);
        return { where: `${file}: $${v.name}`, metric: match[1]!, label: match[2]! };
      }),
  );
}

/** The rules of a rules file (deploy/prometheus/alerts.yaml by default). */
export function rules(file = path.join(ROOT, OPS_FILES.alerts)): Rule[] {
  const doc = yaml.load(readFileSync(file, "utf8")) as { groups: Array<{ rules: Rule[] }> };
  return doc.groups.flatMap((g) => g.rules);
}

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "inf", "nan"]);

/**
 * The metric names a PromQL expression selects: what is left once strings, label matchers, grouping label
 * lists, range durations, numbers and function names are taken out.
 */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, "")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\[[^\]]*\]/g, " ");
  // Whole identifiers only (no backtracking into a function name or past a colon), not followed by "(".
  const names = [...bare.matchAll(/(?<![\w:.])[A-Za-z_:][\w:]*(?![\w:]|\s*\()/g)]
    .map((m) => m[0])
    .filter((name) => !KEYWORDS.has(name.toLowerCase()));
  return [...new Set(names)];
}
