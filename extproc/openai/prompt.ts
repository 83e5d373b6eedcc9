import type { InferenceRequest } from "./schemas.js";

/** The text a request sends to the model, ready for counting (or scanning). */
export interface PromptText {
  /** Every string the model will read: message contents and text parts, tool call arguments, prompts, inputs. */
  readonly texts: string[];
  /** Tokens given as ids (completions/embeddings accept token arrays). */
  readonly tokenIds: number;
  /** Chat messages: each costs a few tokens of framing on top of its text. */
  readonly messages: number;
}

/** Chat framing per message and for priming the reply (OpenAI's published counting recipe). */
export const TOKENS_PER_MESSAGE = 3;
export const TOKENS_PER_REPLY = 3;

function addInput(input: unknown, out: { texts: string[]; tokenIds: number }): void {
  if (typeof input === "string") out.texts.push(input);
  else if (typeof input === "number") out.tokenIds++;
  else if (Array.isArray(input)) for (const item of input) addInput(item, out);
}

/** Collects the prompt text of a validated chat, completion or embeddings request. */
export function promptText(request: InferenceRequest): PromptText {
  const out = { texts: [] as string[], tokenIds: 0 };
  const messages = request.messages;
  if (Array.isArray(messages)) {
    for (const message of messages as Array<Record<string, unknown>>) {
      if (typeof message.role === "string") out.texts.push(message.role);
      if (typeof message.name === "string") out.texts.push(message.name);
      const content = message.content;
      if (typeof content === "string") out.texts.push(content);
      else if (Array.isArray(content)) {
        for (const part of content as Array<Record<string, unknown>>) {
          if (typeof part.text === "string") out.texts.push(part.text);
        }
      }
      if (Array.isArray(message.tool_calls)) {
        for (const call of message.tool_calls as Array<{
          function?: { name?: unknown; arguments?: unknown };
        }>) {
          if (typeof call.function?.name === "string") out.texts.push(call.function.name);
          if (typeof call.function?.arguments === "string") out.texts.push(call.function.arguments);
        }
      }
    }
    return { ...out, messages: messages.length };
  }
  addInput(request.prompt ?? request.input, out);
  return { ...out, messages: 0 };
}
