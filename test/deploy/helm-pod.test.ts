/**
 * The Helm chart's pod (helm template, default values) run on this machine as the kustomize one is
 * (pod.test.ts): a real Envoy with the pod's flags and the bootstrap from the chart's ConfigMap, extproc with
 * the pod's environment and the chart's policy over the Unix socket, demo model servers for the pools.
 */
import { describeLocalGateway } from "./local-gateway.js";
import { localPodOptions } from "./rendered-pod.js";
import { helmTemplate } from "./tools.js";

describeLocalGateway(
  "the Helm chart's pod (helm template deploy/helm/llm-gateway) run locally: Envoy and extproc over the Unix socket",
  localPodOptions(helmTemplate({}), "llm-gateway"),
  () => {},
);
