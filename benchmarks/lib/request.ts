/**
 * The one request every row is measured with: a chat completion for the demo model, non-streaming or
 * streamed, and what its answer says.
 */
import { DEMO_KEYS } from "../../test/harness/index.js";

/** The model every row serves (the demo model server's pool-a model in deploy/policy.yaml). */
export const MODEL = "llama-3.1-8b-instruct";
export const CHAT_PATH = "/v1/chat/completions";
/** The benchmark's API key (sk-demo-research, id research-notebooks in deploy/policy.yaml). */
export const BENCH_KEY = DEMO_KEYS.research;
/** 24 words: the demo server echoes them, so every answer is 28 tokens (28 SSE chunks when streamed). */
const PROMPT =
  "Summarise in one paragraph why an API gateway in front of model servers should authenticate, " +
  "route and audit every request before it reaches a GPU.";
/** Completion tokens of every answer to {@link requestBody} (the demo server's count). */
export const ANSWER_TOKENS = 28;

export const MODES = ["chat", "chat-stream"] as const;
/** Non-streaming or streamed (`stream: true`, SSE). */
export type Mode = (typeof MODES)[number];
export const MODE_LABELS: Record<Mode, string> = { chat: "non-streaming", "chat-stream": "streamed" };

/** Headers of every benchmark request. */
export const BASE_HEADERS = {
  "content-type": "application/json",
  authorization: `Bearer ${BENCH_KEY}`,
} as const;

/** The benchmark request's body; `appendToPrompt` lets a row's check add text the row must act on. */
export function requestBody(mode: Mode, appendToPrompt = ""): string {
  return JSON.stringify({
    model: MODEL,
    messages: [
      { role: "system", content: "You are a concise assistant." },
      { role: "user", content: PROMPT + appendToPrompt },
    ],
    max_tokens: 64,
    ...(mode === "chat-stream" && { stream: true }),
  });
}

/** What an answer says: its text (message content, or the streamed deltas joined) and its token count. */
export interface Answer {
  readonly text: string;
  /** `usage.completion_tokens`, from the last chunk that has usage when streamed; undefined if none. */
  readonly completionTokens: number | undefined;
}

/** Reads {@link Answer} from a chat completion body (JSON, or SSE when `mode` streams). */
export function readAnswer(mode: Mode, body: string): Answer {
  type Chunk = {
    choices?: Array<{ message?: { content?: string }; delta?: { content?: string } }>;
    usage?: { completion_tokens?: number } | null;
  };
  if (mode === "chat") {
    const json = JSON.parse(body) as Chunk;
    return {
      text: json.choices?.[0]?.message?.content ?? "",
      completionTokens: json.usage?.completion_tokens,
    };
  }
  const chunks = body
    .split("\n")
    .filter((line) => line.startsWith("data: {"))
    .map((line) => JSON.parse(line.slice("data: ".length)) as Chunk);
  return {
    text: chunks.map((c) => c.choices?.[0]?.delta?.content ?? "").join(""),
    completionTokens: chunks.findLast((c) => c.usage)?.usage?.completion_tokens ?? undefined,
  };
}

/** Sends the benchmark request (non-streaming or streamed) to `url` with `headers`; status and body. */
export async function sendOnce(
  url: string,
  headers: Readonly<Record<string, string>>,
  mode: Mode,
  appendToPrompt = "",
): Promise<{ status: number; body: string; headers: Headers }> {
  const res = await fetch(url, { method: "POST", headers, body: requestBody(mode, appendToPrompt) });
  return { status: res.status, body: await res.text(), headers: res.headers };
}
