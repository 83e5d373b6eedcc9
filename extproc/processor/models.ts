import type { HeaderMapValues } from "../envoy/headers.js";
import type { LocalReply } from "../envoy/messages.js";
import { GatewayError } from "../errors/index.js";
import type { Policy } from "../policy/index.js";
import { listAllowedModels } from "../routing/index.js";
import type { AuthenticatedContext } from "./context.js";
import type { EndpointProcessor } from "./endpoint.js";

const MODELS_PATH = "/v1/models";

/** `GET /v1/models` and `GET /v1/models/{id}`: answered by the gateway from policy, never forwarded. */
export class ModelsProcessor implements EndpointProcessor {
  readonly api = "models";

  requestHeaders(ctx: AuthenticatedContext, _headers: HeaderMapValues): LocalReply {
    const allowed = listAllowedModels(ctx.policy, ctx.identity);
    const id =
      ctx.path.length > MODELS_PATH.length ? modelId(ctx.path.slice(MODELS_PATH.length + 1)) : undefined;
    let body: unknown;
    if (id === undefined) {
      body = { object: "list", data: allowed.map((name) => modelObject(ctx.policy, name)) };
    } else {
      // A model the key may not use is reported as absent, like OpenAI does for models outside a project.
      if (!allowed.includes(id))
        throw new GatewayError("model_not_found", `The model '${id}' does not exist.`, "model");
      ctx.requestedModel = id;
      body = modelObject(ctx.policy, id);
    }
    ctx.status = 200;
    ctx.complete = true;
    return {
      status: 200,
      body: JSON.stringify(body),
      contentType: "application/json",
      details: "models_listed",
    };
  }
}

/**
 * The model id in a `/v1/models/{id}` path, percent-decoded. A malformed escape (`%E0%A4%A`) cannot name
 * any model, so it is answered like any other absent model: 404 `model_not_found`, quoting the id as sent.
 */
function modelId(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    throw new GatewayError("model_not_found", `The model '${encoded}' does not exist.`, "model");
  }
}

/** Whether `path` is served by {@link ModelsProcessor}. */
export const isModelsPath = (path: string): boolean =>
  path === MODELS_PATH || path.startsWith(`${MODELS_PATH}/`);

function modelObject(policy: Policy, name: string) {
  const model = policy.models.get(name);
  return {
    id: name,
    object: "model",
    created: policy.loadedAtSeconds,
    owned_by: model ? model.ownedBy : "llm-gateway",
  };
}
