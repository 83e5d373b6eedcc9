/**
 * Demo OpenAI-compatible model server: a test fixture and demo aid standing in for a vLLM pool, not part of
 * the product. Answers chat completions, completions and embeddings with deterministic text and real
 * `usage` (one token per whitespace-separated word), streams SSE with a per-token delay, and injects faults
 * on request via headers. Streams have the shapes of vLLM 0.32's (test/vllm-recordings/): the same fields
 * in the same order, `finish_reason` on the last token's chunk, `system_fingerprint` there (or, with
 * `include_usage`, on the usage chunk instead), usage on every chunk with `continuous_usage_stats` and
 * `include_usage` both, and no `"usage":null`. Headers:
 *
 * - `x-demo-status: 503`          answer with that status and an OpenAI error body
 * - `x-demo-body: bytes`          answer with exactly these bytes (URI-encoded) as `application/json`, with
 *                                 `x-demo-status` or 200 (a server's own error body, or JSON that is not)
 * - `x-demo-delay-ms: 250`        wait before answering
 * - `x-demo-drop: before-response | mid-stream`  destroy the connection
 * - `x-demo-token-delay-ms: 20`   delay between streamed tokens (default from options)
 * - `x-demo-omit-usage: 1`        never send the final usage chunk, even when asked (some servers don't)
 * - `x-demo-reply: text`          answer with exactly this text (URI-encoded) instead of the echo
 * - `x-demo-split: 5,12`          stream the answer in pieces cut at these character offsets
 * - `x-demo-byte-split: 3,9`      write the whole event stream at the end, in network writes cut at these
 *                                 byte offsets (inside `data:`, inside a UTF-8 character, anywhere)
 * - `x-demo-reasoning: text`      also answer with this reasoning text (URI-encoded), before the content (chat:
 *                                 a reasoning field; Responses: a reasoning item; Messages: a thinking block)
 * - `x-demo-reasoning-field: reasoning_content`  the field it goes in (default `reasoning`, as vLLM 0.32)
 * - `x-demo-tool-call: json`      (chat) answer with one tool call, `{"name","arguments"}` (URI-encoded JSON),
 *                                 instead of content; finish_reason `tool_calls`
 * - `x-demo-fragment-chars: 3`    stream reasoning and tool call arguments in pieces of this many characters
 *
 * With `capacity` set, chat and completion answers go through a {@link CapacityModel} (sequence slots, KV
 * budget, prefix cache, speed; it replaces the token delay) and `GET /metrics` answers vLLM's metrics.
 *
 * Requests that ask for `logprobs` (chat: `logprobs: true`, `top_logprobs`; completions: `logprobs: n`) get
 * them for every content token, in vLLM's shapes.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  agentPromptText,
  anthropicError,
  countTokensAnswer,
  messagesAnswer,
  messagesEvents,
  responsesAnswer,
  responsesEvents,
  type AgentAnswer,
  type AgentEvent,
} from "./agents.js";
import { CapacityModel, vllmMetricsText, type CapacityOptions } from "./capacity.js";

/** Options for {@link startModelServer}. */
export interface ModelServerOptions {
  /** Name reported in the `x-demo-server` response header (which pool answered). */
  readonly name: string;
  readonly port?: number;
  readonly host?: string;
  /** Model ids this server serves; others get 404 like vLLM. */
  readonly models: readonly string[];
  /** If set, requests must carry `Authorization: Bearer <apiKey>` (vLLM `--api-key`). */
  readonly apiKey?: string | undefined;
  /** Default delay between streamed tokens. */
  readonly tokenDelayMs?: number;
  /** Keep the last N requests for inspection (tests). 0 keeps none. */
  readonly recordRequests?: number;
  /**
   * Speak chat completions only, as TGI or Ollama do: `/v1/responses` and `/v1/messages` answer 404 (a
   * pool the gateway translates for).
   */
  readonly chatOnly?: boolean;
  /** Model capacity and speed (see {@link CapacityModel}); off by default: every request runs at once. */
  readonly capacity?: Partial<CapacityOptions>;
}

/** A request as the model server received it. */
export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

/** A running demo model server. */
export interface ModelServer {
  readonly port: number;
  readonly url: string;
  /** Most recent requests, oldest first (bounded by `recordRequests`). */
  readonly received: ReceivedRequest[];
  /** The capacity model, when `capacity` was given. */
  readonly capacity: CapacityModel | undefined;
  /** While false, `GET /metrics` answers 503 (a scrape failing while the server still serves). */
  setMetricsAvailable(available: boolean): void;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const words = (text: string): string[] => text.split(/\s+/).filter(Boolean);

/** Text of a chat message list, a completion prompt or an embeddings input. */
function promptText(body: Record<string, unknown>): string {
  if (Array.isArray(body.messages)) {
    return body.messages
      .map((m: { content?: unknown }) =>
        typeof m.content === "string"
          ? m.content
          : Array.isArray(m.content)
            ? m.content.map((p: { text?: unknown }) => (typeof p.text === "string" ? p.text : "")).join(" ")
            : "",
      )
      .join(" ");
  }
  const input = body.prompt ?? body.input;
  if (typeof input === "string") return input;
  if (Array.isArray(input)) return input.map((x) => (typeof x === "string" ? x : String(x))).join(" ");
  return "";
}

/** Deterministic answer: names the model and echoes the start of the prompt, capped by max_tokens. */
function answerTokens(model: string, prompt: string, maxTokens: number): string[] {
  const echo = words(prompt).slice(0, 24);
  const tokens = ["This", "is", model, "answering:", ...echo];
  return tokens.slice(0, Math.max(1, maxTokens)).map((t, i) => (i === 0 ? t : ` ${t}`));
}

function sendJson(res: ServerResponse, status: number, body: unknown, serverName: string): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "x-demo-server": serverName,
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, message: string, serverName: string): void {
  sendJson(
    res,
    status,
    { error: { message, type: "invalid_request_error", param: null, code: null } },
    serverName,
  );
}

/** Starts a demo model server on loopback. */
export async function startModelServer(options: ModelServerOptions): Promise<ModelServer> {
  const received: ReceivedRequest[] = [];
  const keep = options.recordRequests ?? 0;
  let sequence = 0;
  const capacity = options.capacity && new CapacityModel(options.capacity);
  let metricsAvailable = true;

  const handle = async (req: IncomingMessage, res: ServerResponse, rawBody: string): Promise<void> => {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    if (keep > 0) {
      received.push({ method: req.method ?? "", path, headers: { ...req.headers }, body: rawBody });
      if (received.length > keep) received.shift();
    }
    if (path === "/health") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      return;
    }
    if (capacity && req.method === "GET" && path === "/metrics") {
      if (!metricsAvailable) res.writeHead(503, { "content-type": "text/plain" }).end("unavailable\n");
      else
        res
          .writeHead(200, { "content-type": "text/plain; version=1.0.0; charset=utf-8" })
          .end(vllmMetricsText(capacity.snapshot(), options.models[0] ?? ""));
      return;
    }
    if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      sendError(res, 401, "Unauthorized: missing or wrong upstream API key", options.name);
      return;
    }
    const delay = Number(req.headers["x-demo-delay-ms"] ?? 0);
    if (delay > 0) await sleep(delay);
    if (req.headers["x-demo-drop"] === "before-response") {
      req.socket.destroy();
      return;
    }
    const forcedStatus = Number(req.headers["x-demo-status"] ?? 0);
    const forcedBody = req.headers["x-demo-body"];
    if (typeof forcedBody === "string") {
      const bytes = Buffer.from(decodeURIComponent(forcedBody));
      res.writeHead(forcedStatus || 200, {
        "content-type": "application/json",
        "content-length": bytes.length,
        "x-demo-server": options.name,
      });
      res.end(bytes);
      return;
    }
    if (forcedStatus >= 400) {
      sendError(res, forcedStatus, `injected failure ${forcedStatus}`, options.name);
      return;
    }
    if (req.method === "GET" && path === "/v1/models") {
      sendJson(
        res,
        200,
        {
          object: "list",
          data: options.models.map((id) => ({ id, object: "model", created: 0, owned_by: "demo" })),
        },
        options.name,
      );
      return;
    }
    if (req.method !== "POST") {
      sendError(res, 404, `no route for ${req.method} ${path}`, options.name);
      return;
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(rawBody) as Record<string, unknown>;
    } catch {
      sendError(res, 400, "invalid JSON body", options.name);
      return;
    }
    const model = String(body.model ?? "");
    const agentApi = path === "/v1/responses" || path.startsWith("/v1/messages");
    if (agentApi && options.chatOnly) {
      sendError(res, 404, `no route for POST ${path}`, options.name);
      return;
    }
    if (!options.models.includes(model)) {
      const message = `The model \`${model}\` does not exist.`;
      if (path.startsWith("/v1/messages"))
        sendJson(res, 404, anthropicError("NotFoundError", message), options.name);
      else sendError(res, 404, message, options.name);
      return;
    }
    if (agentApi) {
      await answerAgentApi(req, res, path, body, model, options);
      return;
    }
    const prompt = promptText(body);
    const promptTokens = words(prompt).length;
    const created = Math.floor(Date.now() / 1000);
    const id = `${options.name}-${++sequence}`;

    if (path === "/v1/embeddings") {
      const inputs = Array.isArray(body.input) ? body.input : [body.input];
      const dims = typeof body.dimensions === "number" ? body.dimensions : 8;
      sendJson(
        res,
        200,
        {
          object: "list",
          model,
          data: inputs.map((input, index) => ({
            object: "embedding",
            index,
            embedding: embed(String(input), dims),
          })),
          usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
        },
        options.name,
      );
      return;
    }
    const chat = path === "/v1/chat/completions";
    if (!chat && path !== "/v1/completions") {
      sendError(res, 404, `no route for POST ${path}`, options.name);
      return;
    }
    const maxTokens = Number(body.max_tokens ?? body.max_completion_tokens ?? 64);
    const forced = req.headers["x-demo-reply"];
    const tokens =
      typeof forced === "string"
        ? splitAt(decodeURIComponent(forced), req.headers["x-demo-split"])
        : answerTokens(model, prompt, maxTokens);
    const finishReason = typeof forced !== "string" && tokens.length >= maxTokens ? "length" : "stop";
    const completionTokens = typeof forced === "string" ? words(tokens.join("")).length : tokens.length;
    // The one point where capacity applies: wait for a slot, then pace the answer by the admission's timing.
    const admission = await capacity?.admit(words(prompt), tokens.length, () => res.destroyed);
    if (capacity && !admission) return;
    // A response that ended normally finished by its reason (vLLM's engine says `stop` for a tool call too);
    // one closed before its end was aborted.
    res.once("close", () => admission?.release(res.writableFinished ? finishReason : "abort"));
    // vLLM's field order.
    const usage = {
      prompt_tokens: promptTokens,
      total_tokens: promptTokens + completionTokens,
      completion_tokens: completionTokens,
    };
    const object = chat ? "chat.completion" : "text_completion";

    const reasoningHeader = req.headers["x-demo-reasoning"];
    const reasoning =
      chat && typeof reasoningHeader === "string" ? decodeURIComponent(reasoningHeader) : undefined;
    const reasoningField = String(req.headers["x-demo-reasoning-field"] ?? "reasoning");
    const toolHeader = req.headers["x-demo-tool-call"];
    const toolCall =
      chat && typeof toolHeader === "string"
        ? (JSON.parse(decodeURIComponent(toolHeader)) as { name: string; arguments: string })
        : undefined;
    const toolCallId = `chatcmpl-tool-${sequence}`;
    const fragmentChars = Number(req.headers["x-demo-fragment-chars"] ?? 0);
    const logprobs = logprobsRequest(body, chat);
    const finish = toolCall ? "tool_calls" : finishReason;

    if (body.stream !== true) {
      if (admission) await sleep(admission.firstTokenMs + admission.tokenMs * (tokens.length - 1));
      const message = {
        role: "assistant",
        content: toolCall ? null : tokens.join(""),
        ...(reasoning !== undefined && { [reasoningField]: reasoning }),
        ...(toolCall && { tool_calls: [{ id: toolCallId, type: "function", function: toolCall }] }),
      };
      const choice = chat
        ? {
            index: 0,
            message,
            logprobs: logprobs && logprobsOf(tokens, chat, logprobs.top, 0),
            finish_reason: finish,
          }
        : {
            index: 0,
            text: tokens.join(""),
            logprobs: logprobs && logprobsOf(tokens, chat, logprobs.top, 0),
            finish_reason: finish,
          };
      sendJson(res, 200, { id, object, created, model, choices: [choice], usage }, options.name);
      return;
    }

    // What each streamed chunk's choice carries, in order: reasoning, then content tokens or the tool call.
    const pieces: Array<Record<string, unknown>> = [];
    for (const part of reasoning === undefined ? [] : fragments(reasoning, fragmentChars))
      pieces.push({ delta: { [reasoningField]: part } });
    if (toolCall) {
      pieces.push({
        delta: {
          tool_calls: [{ id: toolCallId, type: "function", index: 0, function: { name: toolCall.name } }],
        },
      });
      for (const part of fragments(toolCall.arguments, fragmentChars))
        pieces.push({ delta: { tool_calls: [{ index: 0, function: { arguments: part } }] } });
    } else {
      let offset = 0;
      for (const token of tokens) {
        const lp = logprobs && logprobsOf([token], chat, logprobs.top, offset);
        offset += token.length;
        pieces.push(chat ? { delta: { content: token }, logprobs: lp } : { text: token, logprobs: lp });
      }
    }
    // A choice always finishes, even when it generated nothing.
    if (pieces.length === 0) pieces.push(chat ? { delta: { content: "" } } : { text: "" });

    const streamOptions = body.stream_options as
      { include_usage?: unknown; continuous_usage_stats?: unknown } | undefined;
    const includeUsage =
      streamOptions?.include_usage === true && req.headers["x-demo-omit-usage"] === undefined;
    // As in vLLM: continuous_usage_stats means nothing without include_usage.
    const continuousUsage = includeUsage && streamOptions?.continuous_usage_stats === true;
    const tokenDelay = Number(req.headers["x-demo-token-delay-ms"] ?? options.tokenDelayMs ?? 0);
    const chunkObject = chat ? "chat.completion.chunk" : "text_completion";
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}): string =>
      `data: ${JSON.stringify({ id, object: chunkObject, created, model, choices, ...extra })}\n\n`;
    /** Usage so far, on every chunk with continuous_usage_stats (vLLM's shape). */
    const usageSoFar = (generated: number) =>
      continuousUsage && {
        usage: {
          prompt_tokens: promptTokens,
          total_tokens: promptTokens + generated,
          completion_tokens: generated,
          completion_tokens_details: null,
        },
      };
    const fingerprint = { system_fingerprint: `demo-${options.name}` };
    const byteSplit = req.headers["x-demo-byte-split"];
    const held: string[] = [];
    const write = (text: string): void => {
      if (typeof byteSplit === "string") held.push(text);
      else res.write(text);
    };
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "x-demo-server": options.name,
    });
    if (chat) {
      write(
        chunk(
          [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
          {
            ...usageSoFar(0),
            prompt_token_ids: null,
            prompt_text: null,
          },
        ),
      );
    }
    for (const [i, piece] of pieces.entries()) {
      const pause = admission ? (i === 0 ? admission.firstTokenMs : admission.tokenMs) : tokenDelay;
      if (pause > 0) await sleep(pause);
      if (res.destroyed) return;
      if (req.headers["x-demo-drop"] === "mid-stream" && i === Math.floor(pieces.length / 2)) {
        req.socket.destroy();
        return;
      }
      // The last piece's chunk finishes the choice; without include_usage it carries the fingerprint.
      const last = i === pieces.length - 1;
      const finishing = last ? { finish_reason: finish, stop_reason: null } : { finish_reason: null };
      const lp = (piece.logprobs as unknown) ?? null;
      const choice = chat
        ? { index: 0, delta: piece.delta, logprobs: lp, ...finishing, token_ids: null }
        : {
            index: 0,
            text: piece.text,
            logprobs: lp,
            finish_reason: finishing.finish_reason,
            stop_reason: null,
            prompt_token_ids: null,
            token_ids: null,
          };
      write(
        chunk([choice], {
          ...usageSoFar(last ? completionTokens : Math.min(i + 1, completionTokens)),
          ...(last && !includeUsage && fingerprint),
        }),
      );
    }
    if (includeUsage) write(chunk([], { usage, ...fingerprint }));
    write("data: [DONE]\n\n");
    if (typeof byteSplit === "string") {
      for (const piece of splitBytes(Buffer.from(held.join(""), "utf8"), byteSplit)) {
        // A pause between writes, so each piece reaches the gateway in a network read of its own.
        await sleep(Math.max(tokenDelay, 1));
        if (res.destroyed) return;
        res.write(piece);
      }
    }
    res.end();
  };

  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (part: Buffer) => parts.push(part));
    req.on("end", () => {
      handle(req, res, Buffer.concat(parts).toString("utf8")).catch((err: Error) => {
        if (!res.headersSent) sendError(res, 500, err.message, options.name);
        else res.destroy();
      });
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    received,
    capacity,
    setMetricsAvailable: (available) => {
      metricsAvailable = available;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * `/v1/responses`, `/v1/messages`, `/v1/messages/count_tokens`: the echo answer (or `x-demo-reply`, or a
 * tool call with `x-demo-tool-call`), streamed and not, in vLLM's shapes. `x-demo-drop: mid-stream` and
 * `x-demo-omit-usage` work as for chat.
 */
async function answerAgentApi(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  body: Record<string, unknown>,
  model: string,
  options: ModelServerOptions,
): Promise<void> {
  const prompt = agentPromptText(body);
  const promptTokens = words(prompt).length;
  if (path === "/v1/messages/count_tokens") {
    sendJson(res, 200, countTokensAnswer(promptTokens), options.name);
    return;
  }
  if (path !== "/v1/responses" && path !== "/v1/messages") {
    sendJson(res, 404, anthropicError("NotFoundError", `no route for POST ${path}`), options.name);
    return;
  }
  const maxTokens = Number(body.max_output_tokens ?? body.max_tokens ?? 64);
  const forced = req.headers["x-demo-reply"];
  const tokens =
    typeof forced === "string"
      ? splitAt(decodeURIComponent(forced), req.headers["x-demo-split"])
      : answerTokens(model, prompt, maxTokens);
  const toolHeader = req.headers["x-demo-tool-call"];
  const toolCall =
    typeof toolHeader === "string"
      ? (JSON.parse(decodeURIComponent(toolHeader)) as { name: string; arguments: string })
      : undefined;
  const fragmentChars = Number(req.headers["x-demo-fragment-chars"] ?? 0);
  const generated = toolCall ? words(toolCall.arguments).length || 1 : words(tokens.join("")).length;
  const answer: AgentAnswer = {
    model,
    tokens,
    toolCall,
    argumentPieces: toolCall ? fragments(toolCall.arguments, fragmentChars) : [],
    promptTokens,
    completionTokens: typeof forced === "string" || toolCall ? generated : tokens.length,
    truncated: !toolCall && typeof forced !== "string" && tokens.length >= maxTokens,
    maxTokens,
    omitUsage: req.headers["x-demo-omit-usage"] !== undefined,
    reasoning:
      typeof req.headers["x-demo-reasoning"] === "string"
        ? fragments(decodeURIComponent(req.headers["x-demo-reasoning"]), fragmentChars)
        : undefined,
  };
  const created = Math.floor(Date.now() / 1000);
  const responses = path === "/v1/responses";
  if (body.stream !== true) {
    sendJson(
      res,
      200,
      responses ? responsesAnswer(body, answer, created) : messagesAnswer(answer),
      options.name,
    );
    return;
  }
  const events: AgentEvent[] = responses ? responsesEvents(body, answer, created) : messagesEvents(answer);
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-demo-server": options.name,
  });
  const tokenDelay = Number(req.headers["x-demo-token-delay-ms"] ?? options.tokenDelayMs ?? 0);
  for (const [i, event] of events.entries()) {
    if (tokenDelay > 0) await sleep(tokenDelay);
    if (res.destroyed) return;
    if (req.headers["x-demo-drop"] === "mid-stream" && i === Math.floor(events.length / 2)) {
      req.socket.destroy();
      return;
    }
    res.write(`event: ${event.name}\ndata: ${JSON.stringify(event.data)}\n\n`);
  }
  res.end();
}

/** Cuts `text` at the given character offsets (`"5,12"`); the whole text as one piece without offsets. */
function splitAt(text: string, offsets: string | string[] | undefined): string[] {
  const cuts =
    typeof offsets === "string"
      ? offsets
          .split(",")
          .map(Number)
          .filter((n) => n > 0 && n < text.length)
      : [];
  const pieces: string[] = [];
  let last = 0;
  for (const cut of [...cuts.sort((a, b) => a - b), text.length]) {
    pieces.push(text.slice(last, cut));
    last = cut;
  }
  return pieces;
}

/** `text` in pieces of `size` characters (one piece when `size` is 0). */
function fragments(text: string, size: number): string[] {
  if (!(size > 0)) return [text];
  return Array.from({ length: Math.ceil(text.length / size) }, (_, i) =>
    text.slice(i * size, i * size + size),
  );
}

/** The logprobs a request asks for (`top` alternatives per token), or undefined. */
function logprobsRequest(body: Record<string, unknown>, chat: boolean): { top: number } | undefined {
  if (chat) return body.logprobs === true ? { top: Number(body.top_logprobs ?? 0) } : undefined;
  return typeof body.logprobs === "number" ? { top: body.logprobs } : undefined;
}

/**
 * vLLM's logprobs for `tokens` (every alternative is the token itself, logprob -1): chat as `content`
 * entries with `bytes` and `top_logprobs`; completions as parallel `text_offset`, `token_logprobs`, `tokens`
 * and `top_logprobs` (objects keyed by token), offsets counted from `offset`.
 */
function logprobsOf(tokens: readonly string[], chat: boolean, top: number, offset: number): unknown {
  const bytes = (token: string) => [...Buffer.from(token, "utf8")];
  if (chat) {
    return {
      content: tokens.map((token) => ({
        token,
        logprob: -1,
        bytes: bytes(token),
        top_logprobs: Array.from({ length: top }, () => ({ token, logprob: -1, bytes: bytes(token) })),
      })),
    };
  }
  const offsets: number[] = [];
  for (const token of tokens) {
    offsets.push(offset);
    offset += token.length;
  }
  return {
    text_offset: offsets,
    token_logprobs: tokens.map(() => -1),
    tokens,
    top_logprobs: tokens.map((token) => ({ [token]: -1 })),
  };
}

/** Cuts `bytes` at the given byte offsets (`"3,9"`). */
function splitBytes(bytes: Buffer, offsets: string): Buffer[] {
  const cuts = offsets
    .split(",")
    .map(Number)
    .filter((n) => n > 0 && n < bytes.length)
    .sort((a, b) => a - b);
  return [...cuts, bytes.length].map((cut, i) => bytes.subarray(i === 0 ? 0 : cuts[i - 1], cut));
}

/** Deterministic unit-length vector derived from the input text. */
function embed(text: string, dims: number): number[] {
  const digest = createHash("sha256").update(text).digest();
  const raw = Array.from({ length: dims }, (_, i) => digest[i % digest.length]! / 255 - 0.5);
  const norm = Math.hypot(...raw) || 1;
  return raw.map((x) => x / norm);
}
