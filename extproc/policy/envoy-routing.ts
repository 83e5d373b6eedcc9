import { readFileSync } from "node:fs";
import * as yaml from "js-yaml";
import { ROUTING_HEADER } from "../envoy/headers.js";

/** What an Envoy bootstrap says about pool routing. */
export interface EnvoyRouting {
  readonly header: string;
  /** Cluster names under static_resources.clusters. */
  readonly clusters: ReadonlySet<string>;
  /** Routing-header value → cluster, from routes that match the header exactly. */
  readonly routes: ReadonlyMap<string, string>;
}

type Node = Record<string, unknown>;
const isNode = (v: unknown): v is Node => typeof v === "object" && v !== null && !Array.isArray(v);
const list = (v: unknown): Node[] => (Array.isArray(v) ? v.filter(isNode) : []);

/** Reads the clusters and the routing-header routes of an Envoy YAML bootstrap. */
export function readEnvoyRouting(file: string): EnvoyRouting {
  const doc = yaml.load(readFileSync(file, "utf8"), { filename: file });
  if (!isNode(doc)) throw new Error("not a YAML mapping");
  const resources = isNode(doc.static_resources) ? doc.static_resources : {};
  const clusters = new Set(list(resources.clusters).map((c) => String(c.name)));
  const routes = new Map<string, string>();
  for (const listener of list(resources.listeners)) {
    for (const chain of list(listener.filter_chains)) {
      for (const filter of list(chain.filters)) {
        const hcm = isNode(filter.typed_config) ? filter.typed_config : {};
        const routeConfig = isNode(hcm.route_config) ? hcm.route_config : {};
        for (const vhost of list(routeConfig.virtual_hosts)) {
          for (const route of list(vhost.routes)) {
            const match = isNode(route.match) ? route.match : {};
            const action = isNode(route.route) ? route.route : {};
            for (const header of list(match.headers)) {
              const exact = isNode(header.string_match) ? header.string_match.exact : undefined;
              if (
                header.name === ROUTING_HEADER &&
                typeof exact === "string" &&
                typeof action.cluster === "string"
              ) {
                routes.set(exact, action.cluster);
              }
            }
          }
        }
      }
    }
  }
  return { header: ROUTING_HEADER, clusters, routes };
}
