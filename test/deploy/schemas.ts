/**
 * Small zod schemas for the Kubernetes, kustomize and Istio objects under deploy/: only the kinds used there,
 * and for each the fields that matter. Objects are strict where we write them by hand (a misspelt field is
 * an error, as `kubectl apply --validate=strict` would make it); third-party subtrees (affinity, Istio
 * traffic policies, Envoy configs inside EnvoyFilter patches) are checked elsewhere or left open.
 */
import { z } from "zod";

const dnsLabel = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "must be a DNS-1123 label");
const dnsSubdomain = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, "must be a DNS-1123 subdomain");
const labelValue = z.string().regex(/^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/, "bad label value");
const labels = z.record(z.string(), labelValue);
const portNumber = z.number().int().min(1).max(65535);
const portName = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/, "port names are ≤ 15 characters");
const intOrPortName = z.union([portNumber, portName]);
const quantity = z.string().regex(/^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/, "bad quantity");
const nonNegative = z.number().int().min(0);

export const metadataSchema = z.strictObject({
  name: dnsSubdomain,
  namespace: dnsLabel.optional(),
  labels: labels.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export const labelSelectorSchema = z.strictObject({
  matchLabels: labels.optional(),
  matchExpressions: z
    .array(
      z.strictObject({
        key: z.string(),
        operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
        values: z.array(z.string()).optional(),
      }),
    )
    .optional(),
});

/** The ways Kubernetes can run a probe or lifecycle hook (exactly one per handler). */
const handlerFields = {
  httpGet: z
    .strictObject({
      path: z.string().startsWith("/"),
      port: intOrPortName,
      scheme: z.enum(["HTTP", "HTTPS"]).optional(),
    })
    .optional(),
  tcpSocket: z.strictObject({ port: intOrPortName }).optional(),
  exec: z.strictObject({ command: z.array(z.string()).min(1) }).optional(),
};
const oneHandler = (h: { httpGet?: unknown; tcpSocket?: unknown; exec?: unknown }) =>
  [h.httpGet, h.tcpSocket, h.exec].filter(Boolean).length === 1;

const handler = z.strictObject(handlerFields).refine(oneHandler, "exactly one handler");

export const probeSchema = z
  .strictObject({
    ...handlerFields,
    initialDelaySeconds: nonNegative.optional(),
    periodSeconds: z.number().int().min(1).optional(),
    timeoutSeconds: z.number().int().min(1).optional(),
    failureThreshold: z.number().int().min(1).optional(),
    successThreshold: z.number().int().min(1).optional(),
  })
  .refine(oneHandler, "exactly one probe handler");

const envVarSchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/),
    value: z.string().optional(),
    valueFrom: z
      .strictObject({
        secretKeyRef: z
          .strictObject({ name: dnsSubdomain, key: z.string(), optional: z.boolean().optional() })
          .optional(),
        configMapKeyRef: z
          .strictObject({ name: dnsSubdomain, key: z.string(), optional: z.boolean().optional() })
          .optional(),
      })
      .optional(),
  })
  .refine((e) => (e.value === undefined) !== (e.valueFrom === undefined), "value or valueFrom, not both");

/** The "restricted" Pod Security Standard, container part. */
const containerSecurityContext = z.strictObject({
  allowPrivilegeEscalation: z.literal(false),
  readOnlyRootFilesystem: z.literal(true),
  capabilities: z.strictObject({ drop: z.tuple([z.literal("ALL")]) }),
  runAsNonRoot: z.literal(true).optional(),
  runAsUser: z.number().int().min(1).optional(),
});

export const containerSchema = z.strictObject({
  name: dnsLabel,
  image: z.string().min(1),
  imagePullPolicy: z.enum(["Always", "IfNotPresent", "Never"]).optional(),
  command: z.array(z.string()).min(1).optional(),
  args: z.array(z.string()).optional(),
  env: z.array(envVarSchema).optional(),
  ports: z
    .array(
      z.strictObject({
        name: portName,
        containerPort: portNumber,
        protocol: z.enum(["TCP", "UDP", "SCTP"]).optional(),
      }),
    )
    .optional(),
  readinessProbe: probeSchema,
  livenessProbe: probeSchema,
  startupProbe: probeSchema.optional(),
  lifecycle: z.strictObject({ preStop: handler.optional(), postStart: handler.optional() }).optional(),
  resources: z.strictObject({
    requests: z.strictObject({ cpu: quantity, memory: quantity }),
    limits: z.strictObject({ cpu: quantity.optional(), memory: quantity }),
  }),
  securityContext: containerSecurityContext,
  volumeMounts: z
    .array(
      z.strictObject({
        name: dnsLabel,
        mountPath: z.string().startsWith("/"),
        readOnly: z.boolean().optional(),
        subPath: z.string().optional(),
      }),
    )
    .optional(),
});

const fileMode = z.number().int().min(0).max(0o777);
/** Only the volume types the "restricted" Pod Security Standard allows that we use. */
export const volumeSchema = z
  .strictObject({
    name: dnsLabel,
    configMap: z
      .strictObject({
        name: dnsSubdomain,
        defaultMode: fileMode.optional(),
        optional: z.boolean().optional(),
      })
      .optional(),
    secret: z
      .strictObject({
        secretName: dnsSubdomain,
        defaultMode: fileMode.optional(),
        optional: z.boolean().optional(),
      })
      .optional(),
    emptyDir: z
      .strictObject({ medium: z.literal("Memory").optional(), sizeLimit: quantity.optional() })
      .optional(),
  })
  .refine((v) => [v.configMap, v.secret, v.emptyDir].filter(Boolean).length === 1, "exactly one source");

export const podSpecSchema = z.strictObject({
  containers: z.array(containerSchema).min(1),
  volumes: z.array(volumeSchema).optional(),
  terminationGracePeriodSeconds: nonNegative.optional(),
  automountServiceAccountToken: z.boolean().optional(),
  enableServiceLinks: z.boolean().optional(),
  serviceAccountName: dnsSubdomain.optional(),
  securityContext: z.strictObject({
    runAsNonRoot: z.literal(true),
    runAsUser: z.number().int().min(1),
    runAsGroup: z.number().int().min(1),
    fsGroup: z.number().int().min(1).optional(),
    seccompProfile: z.strictObject({ type: z.literal("RuntimeDefault") }),
  }),
  affinity: z.looseObject({}).optional(),
  topologySpreadConstraints: z.array(z.looseObject({})).optional(),
  nodeSelector: z.record(z.string(), z.string()).optional(),
  tolerations: z.array(z.looseObject({})).optional(),
});

const deploymentSchema = z.strictObject({
  apiVersion: z.literal("apps/v1"),
  kind: z.literal("Deployment"),
  metadata: metadataSchema,
  spec: z
    .strictObject({
      replicas: nonNegative.optional(),
      revisionHistoryLimit: nonNegative.optional(),
      selector: z.strictObject({ matchLabels: labels }),
      strategy: z
        .strictObject({
          type: z.enum(["RollingUpdate", "Recreate"]),
          rollingUpdate: z
            .strictObject({
              maxSurge: z.union([nonNegative, z.string()]),
              maxUnavailable: z.union([nonNegative, z.string()]),
            })
            .optional(),
        })
        .optional(),
      template: z.strictObject({
        metadata: z.strictObject({ labels, annotations: z.record(z.string(), z.string()).optional() }),
        spec: podSpecSchema,
      }),
    })
    .refine(
      (s) => Object.entries(s.selector.matchLabels).every(([k, v]) => s.template.metadata.labels[k] === v),
      "spec.selector.matchLabels must match the pod template's labels",
    ),
});

const serviceSchema = z.strictObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("Service"),
  metadata: metadataSchema,
  spec: z.strictObject({
    type: z.enum(["ClusterIP", "NodePort", "LoadBalancer"]).optional(),
    clusterIP: z.literal("None").optional(),
    selector: labels,
    ports: z
      .array(
        z.strictObject({
          name: portName,
          port: portNumber,
          targetPort: intOrPortName,
          protocol: z.enum(["TCP", "UDP"]).optional(),
          appProtocol: z.string().optional(),
        }),
      )
      .min(1),
  }),
});

const hpaSchema = z.strictObject({
  apiVersion: z.literal("autoscaling/v2"),
  kind: z.literal("HorizontalPodAutoscaler"),
  metadata: metadataSchema,
  spec: z
    .strictObject({
      scaleTargetRef: z.strictObject({ apiVersion: z.string(), kind: z.string(), name: dnsSubdomain }),
      minReplicas: z.number().int().min(1),
      maxReplicas: z.number().int().min(1),
      metrics: z
        .array(
          z.strictObject({
            type: z.literal("Resource"),
            resource: z.strictObject({
              name: z.enum(["cpu", "memory"]),
              target: z.strictObject({
                type: z.literal("Utilization"),
                averageUtilization: z.number().int().min(1).max(100),
              }),
            }),
          }),
        )
        .min(1),
      behavior: z.looseObject({}).optional(),
    })
    .refine((s) => s.minReplicas <= s.maxReplicas, "minReplicas > maxReplicas"),
});

const pdbSchema = z.strictObject({
  apiVersion: z.literal("policy/v1"),
  kind: z.literal("PodDisruptionBudget"),
  metadata: metadataSchema,
  spec: z
    .strictObject({
      minAvailable: z.union([nonNegative, z.string().regex(/^\d+%$/)]).optional(),
      maxUnavailable: z.union([nonNegative, z.string().regex(/^\d+%$/)]).optional(),
      selector: labelSelectorSchema,
      unhealthyPodEvictionPolicy: z.enum(["IfHealthyBudget", "AlwaysAllow"]).optional(),
    })
    .refine((s) => (s.minAvailable === undefined) !== (s.maxUnavailable === undefined), "one of min/max"),
});

const networkPolicyPeer = z.strictObject({
  podSelector: labelSelectorSchema.optional(),
  namespaceSelector: labelSelectorSchema.optional(),
  ipBlock: z.strictObject({ cidr: z.string(), except: z.array(z.string()).optional() }).optional(),
});
const networkPolicyPort = z.strictObject({ protocol: z.enum(["TCP", "UDP", "SCTP"]), port: portNumber });
const networkPolicySchema = z.strictObject({
  apiVersion: z.literal("networking.k8s.io/v1"),
  kind: z.literal("NetworkPolicy"),
  metadata: metadataSchema,
  spec: z.strictObject({
    podSelector: labelSelectorSchema,
    policyTypes: z.array(z.enum(["Ingress", "Egress"])),
    ingress: z
      .array(
        z.strictObject({
          from: z.array(networkPolicyPeer).optional(),
          ports: z.array(networkPolicyPort).optional(),
        }),
      )
      .optional(),
    egress: z
      .array(
        z.strictObject({
          to: z.array(networkPolicyPeer).optional(),
          ports: z.array(networkPolicyPort).optional(),
        }),
      )
      .optional(),
  }),
});

const namespaceSchema = z.strictObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("Namespace"),
  metadata: metadataSchema,
});

const configMapSchema = z.strictObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("ConfigMap"),
  metadata: metadataSchema,
  data: z.record(z.string(), z.string()),
});

const secretSchema = z.strictObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("Secret"),
  metadata: metadataSchema,
  type: z.string(),
  stringData: z.record(z.string(), z.string()).optional(),
  data: z.record(z.string(), z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/)).optional(),
});

// ---- Istio (networking.istio.io)

const envoyFilterSchema = z.strictObject({
  apiVersion: z.literal("networking.istio.io/v1alpha3"),
  kind: z.literal("EnvoyFilter"),
  metadata: metadataSchema.extend({ namespace: dnsLabel }),
  spec: z.strictObject({
    workloadSelector: z.strictObject({ labels }),
    configPatches: z
      .array(
        z
          .strictObject({
            applyTo: z.enum([
              "LISTENER",
              "FILTER_CHAIN",
              "NETWORK_FILTER",
              "HTTP_FILTER",
              "ROUTE_CONFIGURATION",
              "VIRTUAL_HOST",
              "HTTP_ROUTE",
              "CLUSTER",
              "EXTENSION_CONFIG",
              "BOOTSTRAP",
              "LISTENER_FILTER",
            ]),
            match: z.strictObject({
              context: z.enum(["ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY"]),
              proxy: z.looseObject({}).optional(),
              listener: z
                .strictObject({
                  portNumber: portNumber.optional(),
                  name: z.string().optional(),
                  filterChain: z
                    .strictObject({
                      name: z.string().optional(),
                      sni: z.string().optional(),
                      filter: z
                        .strictObject({
                          name: z.string(),
                          subFilter: z.strictObject({ name: z.string() }).optional(),
                        })
                        .optional(),
                    })
                    .optional(),
                })
                .optional(),
              routeConfiguration: z
                .strictObject({
                  portNumber: portNumber.optional(),
                  name: z.string().optional(),
                  gateway: z.string().optional(),
                  vhost: z.strictObject({ name: z.string() }).optional(),
                })
                .optional(),
              cluster: z.looseObject({}).optional(),
            }),
            patch: z.strictObject({
              operation: z.enum([
                "MERGE",
                "ADD",
                "REMOVE",
                "INSERT_BEFORE",
                "INSERT_AFTER",
                "INSERT_FIRST",
                "REPLACE",
              ]),
              value: z.record(z.string(), z.unknown()),
            }),
          })
          .refine((p) => {
            const ops: Record<string, string[]> = {
              CLUSTER: ["ADD", "MERGE", "REMOVE"],
              HTTP_FILTER: ["INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "MERGE", "REMOVE", "REPLACE"],
              NETWORK_FILTER: ["INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "MERGE", "REMOVE", "REPLACE"],
              VIRTUAL_HOST: ["ADD", "MERGE", "REMOVE"],
              LISTENER: ["ADD", "MERGE", "REMOVE"],
            };
            return ops[p.applyTo]?.includes(p.patch.operation) ?? true;
          }, "operation not valid for applyTo")
          .refine(
            (p) =>
              !p.patch.operation.startsWith("INSERT_") ||
              p.applyTo !== "HTTP_FILTER" ||
              p.match.listener?.filterChain?.filter?.subFilter !== undefined,
            "an HTTP_FILTER insert needs a subFilter to insert relative to",
          ),
      )
      .min(1),
  }),
});

const istioGatewaySchema = z.strictObject({
  apiVersion: z.literal("networking.istio.io/v1"),
  kind: z.literal("Gateway"),
  metadata: metadataSchema,
  spec: z.strictObject({
    selector: labels,
    servers: z.array(
      z.strictObject({
        port: z.strictObject({
          number: portNumber,
          name: z.string(),
          protocol: z.enum(["HTTP", "HTTPS", "HTTP2", "GRPC", "TLS"]),
        }),
        hosts: z.array(z.string()).min(1),
        tls: z
          .strictObject({
            mode: z.enum(["SIMPLE", "MUTUAL", "PASSTHROUGH", "ISTIO_MUTUAL"]),
            credentialName: z.string(),
          })
          .optional(),
      }),
    ),
  }),
});

const stringMatch = z.strictObject({
  exact: z.string().optional(),
  prefix: z.string().optional(),
  regex: z.string().optional(),
});
const virtualServiceSchema = z.strictObject({
  apiVersion: z.literal("networking.istio.io/v1"),
  kind: z.literal("VirtualService"),
  metadata: metadataSchema,
  spec: z.strictObject({
    hosts: z.array(z.string()).min(1),
    gateways: z.array(z.string()).optional(),
    http: z.array(
      z
        .strictObject({
          name: z.string(),
          match: z
            .array(
              z.strictObject({
                headers: z.record(z.string(), stringMatch).optional(),
                uri: stringMatch.optional(),
              }),
            )
            .optional(),
          headers: z
            .strictObject({
              request: z
                .strictObject({
                  remove: z.array(z.string()).optional(),
                  set: z.record(z.string(), z.string()).optional(),
                })
                .optional(),
              response: z
                .strictObject({
                  remove: z.array(z.string()).optional(),
                  set: z.record(z.string(), z.string()).optional(),
                })
                .optional(),
            })
            .optional(),
          route: z
            .array(
              z.strictObject({
                destination: z.strictObject({
                  host: z.string(),
                  port: z.strictObject({ number: portNumber }).optional(),
                }),
                weight: z.number().int().optional(),
              }),
            )
            .optional(),
          directResponse: z
            .strictObject({
              status: z.number().int(),
              body: z.strictObject({ string: z.string() }).optional(),
            })
            .optional(),
          timeout: z
            .string()
            .regex(/^\d+(ms|s|m|h)$/)
            .optional(),
          retries: z
            .strictObject({
              attempts: nonNegative,
              retryOn: z.string().optional(),
              perTryTimeout: z.string().optional(),
            })
            .optional(),
        })
        .refine(
          (r) => (r.route === undefined) !== (r.directResponse === undefined),
          "route or directResponse",
        ),
    ),
  }),
});

const destinationRuleSchema = z.strictObject({
  apiVersion: z.literal("networking.istio.io/v1"),
  kind: z.literal("DestinationRule"),
  metadata: metadataSchema,
  spec: z.strictObject({
    host: z.string(),
    exportTo: z.array(z.string()).optional(),
    trafficPolicy: z.strictObject({
      loadBalancer: z.strictObject({
        simple: z.enum(["LEAST_REQUEST", "ROUND_ROBIN", "RANDOM", "PASSTHROUGH"]),
      }),
      connectionPool: z.strictObject({
        tcp: z.strictObject({ connectTimeout: z.string(), maxConnections: z.number().int() }),
        http: z.strictObject({
          http1MaxPendingRequests: z.number().int(),
          http2MaxRequests: z.number().int(),
          maxRetries: z.number().int(),
        }),
      }),
      outlierDetection: z.strictObject({
        consecutive5xxErrors: z.number().int(),
        consecutiveGatewayErrors: z.number().int(),
        interval: z.string(),
        baseEjectionTime: z.string(),
        maxEjectionPercent: z.number().int(),
      }),
    }),
  }),
});

// ---- kustomize

export const kustomizationSchema = z.strictObject({
  apiVersion: z.literal("kustomize.config.k8s.io/v1beta1"),
  kind: z.literal("Kustomization"),
  namespace: dnsLabel.optional(),
  resources: z.array(z.string()).min(1),
  configMapGenerator: z
    .array(
      z.strictObject({
        name: dnsSubdomain,
        namespace: dnsLabel.optional(),
        behavior: z.enum(["create", "replace", "merge"]).optional(),
        files: z.array(z.string()).min(1),
        options: z.strictObject({ disableNameSuffixHash: z.boolean() }).optional(),
      }),
    )
    .optional(),
  patches: z
    .array(
      z.strictObject({
        target: z.strictObject({ kind: z.string(), name: z.string() }),
        patch: z.string(),
      }),
    )
    .optional(),
});
export type Kustomization = z.infer<typeof kustomizationSchema>;

/** JSON 6902 patches, as the kustomizations write them. */
export const jsonPatchSchema = z.array(
  z.strictObject({
    op: z.enum(["add", "replace", "remove"]),
    path: z.string().startsWith("/"),
    value: z.unknown(),
  }),
);

// ---- Prometheus Operator (monitoring.coreos.com)

const relabelingSchema = z.strictObject({
  sourceLabels: z.array(z.string()).optional(),
  targetLabel: z.string().optional(),
  replacement: z.string().optional(),
  regex: z.string().optional(),
  action: z.enum(["replace", "keep", "drop", "labelmap", "labeldrop", "labelkeep"]).optional(),
});

const podMonitorSchema = z.strictObject({
  apiVersion: z.literal("monitoring.coreos.com/v1"),
  kind: z.literal("PodMonitor"),
  metadata: metadataSchema,
  spec: z.strictObject({
    selector: labelSelectorSchema,
    podMetricsEndpoints: z
      .array(
        z.strictObject({
          port: z.string(),
          path: z.string().startsWith("/"),
          interval: z.string().regex(/^[0-9]+(ms|s|m)$/),
          relabelings: z.array(relabelingSchema).optional(),
        }),
      )
      .min(1),
  }),
});

/** A rule as Prometheus reads it: an alert or a recording rule (promtool checks the expressions). */
const ruleSchema = z.union([
  z.strictObject({
    alert: z.string().regex(/^[A-Za-z][A-Za-z0-9]*$/),
    expr: z.string(),
    for: z.string().regex(/^[0-9]+[smh]$/),
    labels: z.strictObject({ severity: z.enum(["critical", "warning"]) }),
    annotations: z.strictObject({ summary: z.string(), description: z.string() }),
  }),
  z.strictObject({ record: z.string().regex(/^[a-z_:]+[a-z0-9_:]*$/), expr: z.string() }),
]);

/** The groups of a Prometheus rule file, also the spec of a PrometheusRule. */
export const ruleGroupsSchema = z.strictObject({
  groups: z.array(z.strictObject({ name: z.string(), rules: z.array(ruleSchema).min(1) })).min(1),
});

const prometheusRuleSchema = z.strictObject({
  apiVersion: z.literal("monitoring.coreos.com/v1"),
  kind: z.literal("PrometheusRule"),
  metadata: metadataSchema,
  spec: ruleGroupsSchema,
});

/** Every kind deploy/ may use, by `apiVersion kind`. */
export const kindSchemas = {
  "v1 Namespace": namespaceSchema,
  "v1 ConfigMap": configMapSchema,
  "v1 Secret": secretSchema,
  "v1 Service": serviceSchema,
  "apps/v1 Deployment": deploymentSchema,
  "autoscaling/v2 HorizontalPodAutoscaler": hpaSchema,
  "policy/v1 PodDisruptionBudget": pdbSchema,
  "networking.k8s.io/v1 NetworkPolicy": networkPolicySchema,
  "networking.istio.io/v1alpha3 EnvoyFilter": envoyFilterSchema,
  "networking.istio.io/v1 Gateway": istioGatewaySchema,
  "networking.istio.io/v1 VirtualService": virtualServiceSchema,
  "networking.istio.io/v1 DestinationRule": destinationRuleSchema,
  "monitoring.coreos.com/v1 PodMonitor": podMonitorSchema,
  "monitoring.coreos.com/v1 PrometheusRule": prometheusRuleSchema,
} as const;

export type Deployment = z.infer<typeof deploymentSchema>;
export type Service = z.infer<typeof serviceSchema>;
export type Hpa = z.infer<typeof hpaSchema>;
export type Pdb = z.infer<typeof pdbSchema>;
export type NetworkPolicy = z.infer<typeof networkPolicySchema>;
export type ConfigMap = z.infer<typeof configMapSchema>;
export type Secret = z.infer<typeof secretSchema>;
export type EnvoyFilter = z.infer<typeof envoyFilterSchema>;
export type IstioGateway = z.infer<typeof istioGatewaySchema>;
export type VirtualService = z.infer<typeof virtualServiceSchema>;
export type DestinationRule = z.infer<typeof destinationRuleSchema>;
export type LabelSelector = z.infer<typeof labelSelectorSchema>;
export type PodMonitor = z.infer<typeof podMonitorSchema>;
export type PrometheusRule = z.infer<typeof prometheusRuleSchema>;

/** Any object of a kind in {@link kindSchemas}, validated. */
export type Manifest =
  | z.infer<typeof namespaceSchema>
  | ConfigMap
  | Secret
  | Service
  | Deployment
  | Hpa
  | Pdb
  | NetworkPolicy
  | EnvoyFilter
  | IstioGateway
  | VirtualService
  | DestinationRule
  | PodMonitor
  | PrometheusRule;

/** Validates one object against the schema of its `apiVersion kind`; returns the problems (empty: valid). */
export function checkManifest(doc: unknown): { manifest?: Manifest; problems: string[] } {
  if (typeof doc !== "object" || doc === null) return { problems: ["not a mapping"] };
  const { apiVersion, kind } = doc as { apiVersion?: unknown; kind?: unknown };
  const key = `${String(apiVersion)} ${String(kind)}`;
  const schema = (kindSchemas as Record<string, z.ZodType>)[key];
  if (!schema) return { problems: [`apiVersion/kind "${key}" is not one deploy/ may use`] };
  const parsed = schema.safeParse(doc);
  if (!parsed.success) {
    return { problems: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`) };
  }
  return { manifest: parsed.data as Manifest, problems: [] };
}

/** Whether a label selector selects pods with these labels. */
export function selects(selector: LabelSelector, podLabels: Readonly<Record<string, string>>): boolean {
  const byLabels = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => podLabels[k] === v);
  const byExpressions = (selector.matchExpressions ?? []).every((e) => {
    const value = podLabels[e.key];
    switch (e.operator) {
      case "In":
        return value !== undefined && (e.values ?? []).includes(value);
      case "NotIn":
        return value === undefined || !(e.values ?? []).includes(value);
      case "Exists":
        return value !== undefined;
      case "DoesNotExist":
        return value === undefined;
    }
  });
  return byLabels && byExpressions;
}
