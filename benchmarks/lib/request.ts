/**
 * The requests every row is measured with: one prompt for the demo model, sent through each inference API
 * (chat completions, Responses, Messages), non-streaming or streamed, to a natively served pool or to one
 * the gateway translates for; and what each API's answer says.
 */
import { DEMO_KEYS, POOL_MODELS } from "../../test/harness/index.js";

/** The model every row serves (the demo model server's pool-a model in deploy/policy.yaml). */
export const MODEL = "llama-3.1-8b-instruct";
/** Pool-b's chat model: pool-b speaks chat completions only, so the gateway translates the agent APIs for it. */
export const TRANSLATED_MODEL = "llama-3.1-8b-instruct-v2";
if (!(POOL_MODELS["pool-b"] as readonly string[]).includes(TRANSLATED_MODEL))
  throw new Error(`${TRANSLATED_MODEL} is not a pool-b model of the test harness`);
export const CHAT_PATH = "/v1/chat/completions";
/** The benchmark's API key (sk-demo-research, id research-notebooks in deploy/policy.yaml). */
export const BENCH_KEY = DEMO_KEYS.research;
/** 24 words: the demo server echoes them, so every answer is 28 tokens (28 SSE chunks when streamed). */
const PROMPT =
  "Summarise in one paragraph why an API gateway in front of model servers should authenticate, " +
  "route and audit every request before it reaches a GPU.";
const SYSTEM = "You are a concise assistant.";
/** The output cap every request sets, in its API's field. */
const MAX_TOKENS = 64;
/** Completion tokens of every answer to {@link requestBody} (the demo server's count). */
export const ANSWER_TOKENS = 28;

/** What an answer says: its text (message content, or the streamed deltas joined) and its token count. */
export interface Answer {
  readonly text: string;
  /** Output tokens the answer reports (from its usage, the last event with usage when streamed); undefined if none. */
  readonly completionTokens: number | undefined;
}

/** The JSON data of every SSE event in `body` (`data: {…}` lines; `data: [DONE]` and `event:` lines skipped). */
function sseData(body: string): Array<Record<string, unknown>> {
  return body
    .split("\n")
    .filter((line) => line.startsWith("data: {"))
    .map((line) => JSON.parse(line.slice("data: ".length)) as Record<string, unknown>);
}

/**
 * One inference API on the wire: its path, its auth headers, its request body, the text only its stream's
 * final event carries, and how its answer is read.
 */
interface Wire {
  readonly path: string;
  readonly auth: Readonly<Record<string, string>>;
  readonly streamEnd: string;
  body(model: string, prompt: string, stream: boolean): Record<string, unknown>;
  read(body: string, stream: boolean): Answer;
}

type ChatChunk = {
  choices?: Array<{ message?: { content?: string }; delta?: { content?: string } }>;
  usage?: { completion_tokens?: number } | null;
};
type ResponsesObject = {
  output?: Array<{ type?: string; content?: Array<{ type?: string; text?: string }> }>;
  usage?: { output_tokens?: number };
};
type MessagesObject = {
  content?: Array<{ type?: string; text?: string }>;
  usage?: { output_tokens?: number };
};

const BEARER = { authorization: `Bearer ${BENCH_KEY}` } as const;

const WIRES = {
  chat: {
    path: CHAT_PATH,
    auth: BEARER,
    streamEnd: "data: [DONE]\n\n",
    body: (model, prompt, stream) => ({
      model,
      messages: [
        { role: "system", content: SYSTEM },
        { role: "user", content: prompt },
      ],
      max_tokens: MAX_TOKENS,
      ...(stream && { stream: true }),
    }),
    read: (body, stream) => {
      if (!stream) {
        const json = JSON.parse(body) as ChatChunk;
        return {
          text: json.choices?.[0]?.message?.content ?? "",
          completionTokens: json.usage?.completion_tokens,
        };
      }
      const chunks = sseData(body) as ChatChunk[];
      return {
        text: chunks.map((c) => c.choices?.[0]?.delta?.content ?? "").join(""),
        completionTokens: chunks.findLast((c) => c.usage)?.usage?.completion_tokens ?? undefined,
      };
    },
  },
  responses: {
    path: "/v1/responses",
    auth: BEARER,
    streamEnd: "event: response.completed\n",
    body: (model, prompt, stream) => ({
      model,
      instructions: SYSTEM,
      input: prompt,
      max_output_tokens: MAX_TOKENS,
      store: false,
      ...(stream && { stream: true }),
    }),
    read: (body, stream) => {
      const text = (r: ResponsesObject): string =>
        (r.output ?? [])
          .filter((item) => item.type === "message")
          .flatMap((item) => item.content ?? [])
          .filter((part) => part.type === "output_text")
          .map((part) => part.text ?? "")
          .join("");
      if (!stream) {
        const json = JSON.parse(body) as ResponsesObject;
        return { text: text(json), completionTokens: json.usage?.output_tokens };
      }
      const events = sseData(body);
      const done = events.findLast((e) => e.type === "response.completed")?.response as
        ResponsesObject | undefined;
      return {
        text: events
          .filter((e) => e.type === "response.output_text.delta")
          .map((e) => String(e.delta))
          .join(""),
        completionTokens: done?.usage?.output_tokens,
      };
    },
  },
  messages: {
    path: "/v1/messages",
    // Claude Code's and the Anthropic SDKs' default; the gateway also takes a bearer token.
    auth: { "x-api-key": BENCH_KEY, "anthropic-version": "2023-06-01" },
    // No [DONE]: the stream ends after message_stop.
    streamEnd: "event: message_stop\n",
    body: (model, prompt, stream) => ({
      model,
      system: SYSTEM,
      messages: [{ role: "user", content: prompt }],
      max_tokens: MAX_TOKENS,
      ...(stream && { stream: true }),
    }),
    read: (body, stream) => {
      if (!stream) {
        const json = JSON.parse(body) as MessagesObject;
        return {
          text: (json.content ?? [])
            .filter((b) => b.type === "text")
            .map((b) => b.text ?? "")
            .join(""),
          completionTokens: json.usage?.output_tokens,
        };
      }
      const events = sseData(body);
      const delta = (e: Record<string, unknown>) => e.delta as { type?: string; text?: string } | undefined;
      return {
        text: events
          .filter((e) => e.type === "content_block_delta" && delta(e)?.type === "text_delta")
          .map((e) => delta(e)?.text ?? "")
          .join(""),
        completionTokens: (
          events.findLast((e) => e.type === "message_delta")?.usage as { output_tokens?: number } | undefined
        )?.output_tokens,
      };
    },
  },
} as const satisfies Record<string, Wire>;

/** The inference APIs the benchmark can measure (`--apis`). */
export const APIS = Object.keys(WIRES) as Api[];
export type Api = keyof typeof WIRES;

/** One measured request shape: an API, streamed or not, to a native pool or to one the gateway translates for. */
export interface ModeSpec {
  readonly api: Api;
  readonly stream: boolean;
  /** Sent for pool-b's model, which the gateway translates to chat completions (agent APIs only). */
  readonly translated: boolean;
  readonly label: string;
}

/** Every mode; chat's two come first (the bars' and the saturation phase's request). */
const MODE_SPECS = {
  chat: { api: "chat", stream: false, translated: false, label: "non-streaming" },
  "chat-stream": { api: "chat", stream: true, translated: false, label: "streamed" },
  responses: { api: "responses", stream: false, translated: false, label: "responses, non-streaming" },
  "responses-stream": { api: "responses", stream: true, translated: false, label: "responses, streamed" },
  "responses-translated": {
    api: "responses",
    stream: false,
    translated: true,
    label: "responses translated, non-streaming",
  },
  "responses-translated-stream": {
    api: "responses",
    stream: true,
    translated: true,
    label: "responses translated, streamed",
  },
  messages: { api: "messages", stream: false, translated: false, label: "messages, non-streaming" },
  "messages-stream": { api: "messages", stream: true, translated: false, label: "messages, streamed" },
  "messages-translated": {
    api: "messages",
    stream: false,
    translated: true,
    label: "messages translated, non-streaming",
  },
  "messages-translated-stream": {
    api: "messages",
    stream: true,
    translated: true,
    label: "messages translated, streamed",
  },
} as const satisfies Record<string, ModeSpec>;

/** A measured request shape (see {@link ModeSpec}). */
export type Mode = keyof typeof MODE_SPECS;
export const MODES = Object.keys(MODE_SPECS) as Mode[];
export const modeSpec = (mode: Mode): ModeSpec => MODE_SPECS[mode];
export const MODE_LABELS = Object.fromEntries(MODES.map((m) => [m, MODE_SPECS[m].label])) as Record<
  Mode,
  string
>;
/** The modes of `apis`, in table order. */
export const modesOf = (apis: readonly Api[]): Mode[] =>
  MODES.filter((m) => apis.includes(MODE_SPECS[m].api));
/** The mode of the same API and pool without streaming, or with it. */
export const modeWithStream = (mode: Mode, stream: boolean): Mode =>
  MODES.find(
    (m) =>
      MODE_SPECS[m].api === MODE_SPECS[mode].api &&
      MODE_SPECS[m].translated === MODE_SPECS[mode].translated &&
      MODE_SPECS[m].stream === stream,
  )!;

/** The path a mode's request goes to. */
export const requestPath = (mode: Mode): string => WIRES[MODE_SPECS[mode].api].path;

/** Headers of a mode's request: content type and the benchmark key as its API sends it. */
export const requestHeaders = (mode: Mode): Record<string, string> => ({
  "content-type": "application/json",
  ...WIRES[MODE_SPECS[mode].api].auth,
});

/** What a complete streamed answer of `mode` contains (its final event); undefined when it does not stream. */
export const streamEnd = (mode: Mode): string | undefined =>
  MODE_SPECS[mode].stream ? WIRES[MODE_SPECS[mode].api].streamEnd : undefined;

/** A mode's request body; `appendToPrompt` lets a row's check add text the row must act on. */
export function requestBody(mode: Mode, appendToPrompt = ""): string {
  const { api, stream, translated } = MODE_SPECS[mode];
  return JSON.stringify(
    WIRES[api].body(translated ? TRANSLATED_MODEL : MODEL, PROMPT + appendToPrompt, stream),
  );
}

/** Reads {@link Answer} from a mode's answer body (JSON, or SSE when the mode streams). */
export function readAnswer(mode: Mode, body: string): Answer {
  const { api, stream } = MODE_SPECS[mode];
  return WIRES[api].read(body, stream);
}

/**
 * Sends a mode's request to `origin` (scheme, host and port) with its headers and `extraHeaders` (which win:
 * a row's routing header, a check's wrong key); status, body and headers of the answer.
 */
export async function sendOnce(
  origin: string,
  mode: Mode,
  extraHeaders: Readonly<Record<string, string>> = {},
  appendToPrompt = "",
): Promise<{ status: number; body: string; headers: Headers }> {
  const res = await fetch(`${origin}${requestPath(mode)}`, {
    method: "POST",
    headers: { ...requestHeaders(mode), ...extraHeaders },
    body: requestBody(mode, appendToPrompt),
  });
  return { status: res.status, body: await res.text(), headers: res.headers };
}
