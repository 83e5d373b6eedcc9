/**
 * A Responses API request (`POST /v1/responses`, already validated) as the chat-completions request that
 * asks a chat-only model server for the same generation. What chat cannot express is refused (see
 * docs/translation.md), never dropped silently when it would change what the model does.
 */
import { malformed, unsupported } from "./refuse.js";

type Json = Record<string, unknown>;

/** The request fields read here (the validated body may carry more). */
export interface ResponsesRequest {
  readonly model: string;
  readonly input: string | ReadonlyArray<Json>;
  readonly instructions?: string | null;
  readonly tools?: ReadonlyArray<Json> | null;
  readonly tool_choice?: string | Json | null;
  readonly parallel_tool_calls?: boolean | null;
  readonly max_output_tokens?: number | null;
  readonly temperature?: number | null;
  readonly top_p?: number | null;
  readonly presence_penalty?: number | null;
  readonly frequency_penalty?: number | null;
  readonly top_logprobs?: number | null;
  readonly stream?: boolean | null;
  readonly user?: string | null;
  readonly reasoning?: { readonly effort?: string | null } | null;
  readonly text?: { readonly format?: Json | null; readonly verbosity?: string | null } | null;
  readonly previous_response_id?: string | null;
  readonly conversation?: unknown;
  readonly prompt?: unknown;
  readonly background?: boolean | null;
  readonly max_tool_calls?: number | null;
  readonly truncation?: string | null;
}

/** Request fields that need state or services a chat pool does not have, refused when set. */
const STATEFUL = {
  previous_response_id: "previous_response_id (continuing a stored response)",
  conversation: "conversation (a stored conversation)",
  prompt: "prompt (a stored prompt template)",
} as const;

/** The chat-completions body for a Responses request. */
export function responsesToChat(request: ResponsesRequest): Json {
  for (const [field, what] of Object.entries(STATEFUL))
    if (request[field as keyof typeof STATEFUL] != null) throw unsupported(field, what);
  if (request.background) throw unsupported("background", "background: true");
  if (request.max_tool_calls != null) throw unsupported("max_tool_calls", "max_tool_calls");
  if (request.truncation != null && request.truncation !== "disabled")
    throw unsupported("truncation", `truncation: "${request.truncation}"`);
  if (request.top_logprobs) throw unsupported("top_logprobs", "top_logprobs");
  const verbosity = request.text?.verbosity;
  if (verbosity != null && verbosity !== "medium")
    throw unsupported("text.verbosity", `text.verbosity: "${verbosity}"`);

  const messages: Json[] = [];
  if (request.instructions) messages.push({ role: "system", content: request.instructions });
  if (typeof request.input === "string") messages.push({ role: "user", content: request.input });
  else request.input.forEach((item, i) => addInputItem(messages, item, `input[${i}]`));

  const chat: Json = { model: request.model, messages };
  const tools = (request.tools ?? []).map((tool, i) => chatTool(tool, `tools[${i}]`));
  if (tools.length > 0) chat.tools = tools;
  if (request.tool_choice != null) chat.tool_choice = chatToolChoice(request.tool_choice);
  if (request.parallel_tool_calls != null) chat.parallel_tool_calls = request.parallel_tool_calls;
  // vLLM reads max_completion_tokens before max_tokens, but TGI and Ollama read only max_tokens.
  if (request.max_output_tokens != null) chat.max_tokens = request.max_output_tokens;
  for (const field of ["temperature", "top_p", "presence_penalty", "frequency_penalty", "user"] as const)
    if (request[field] != null) chat[field] = request[field];
  if (request.reasoning?.effort != null) chat.reasoning_effort = request.reasoning.effort;
  const format = request.text?.format;
  if (format != null && format.type !== "text") chat.response_format = chatResponseFormat(format);
  if (request.stream) {
    chat.stream = true;
    chat.stream_options = { include_usage: true };
  }
  return chat;
}

/** Appends the chat messages for one input item. */
function addInputItem(messages: Json[], item: Json, param: string): void {
  const type = item.type ?? "message";
  switch (type) {
    case "message": {
      const role = item.role === "developer" ? "system" : (item.role as string);
      messages.push({ role, content: messageContent(item.content, role, `${param}.content`) });
      return;
    }
    case "function_call": {
      const call = {
        id: item.call_id,
        type: "function",
        function: { name: item.name, arguments: item.arguments },
      };
      const last = messages.at(-1);
      // Consecutive calls (and a call right after the assistant's text) are one chat assistant turn.
      if (last?.role === "assistant") last.tool_calls = [...((last.tool_calls as Json[]) ?? []), call];
      else messages.push({ role: "assistant", content: null, tool_calls: [call] });
      return;
    }
    case "function_call_output":
      messages.push({
        role: "tool",
        tool_call_id: item.call_id,
        content: toolOutput(item.output, `${param}.output`),
      });
      return;
    case "reasoning":
      // Earlier turns' reasoning is not fed back: chat has no input slot for it, and chat templates drop it.
      return;
    default:
      throw unsupported(`${param}.type`, `an input item of type "${String(type)}"`);
  }
}

/**
 * A message's content for chat: a string when it is all text (every chat server reads that), else content
 * parts (text and image_url). Images only in user messages: chat has no image slot elsewhere.
 */
function messageContent(content: unknown, role: string, param: string): string | Json[] {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) throw malformed(param, "a string or an array of content parts");
  const parts = (content as Json[]).map((part, i) => contentPart(part, role, `${param}[${i}]`));
  return parts.every((part) => part.type === "text")
    ? parts.map((part) => part.text as string).join("")
    : parts;
}

function contentPart(part: Json, role: string, param: string): Json {
  switch (part.type) {
    case "input_text":
    case "output_text":
      return { type: "text", text: part.text };
    case "refusal":
      return { type: "text", text: part.refusal };
    case "input_image": {
      if (role !== "user") throw unsupported(`${param}.type`, `an image in a ${role} message`);
      if (typeof part.image_url !== "string")
        throw unsupported(`${param}.file_id`, "an image by file_id (there is no file store)");
      const image: Json = { url: part.image_url };
      if (part.detail != null) image.detail = part.detail;
      return { type: "image_url", image_url: image };
    }
    default:
      throw unsupported(`${param}.type`, `a content part of type "${String(part.type)}"`);
  }
}

/** A function_call_output's output as a chat tool message's text (chat tool messages carry text only). */
function toolOutput(output: unknown, param: string): string {
  if (typeof output === "string") return output;
  if (!Array.isArray(output)) throw malformed(param, "a string or an array of input_text parts");
  return (output as Json[])
    .map((part, i) => {
      if (part.type !== "input_text")
        throw unsupported(`${param}[${i}].type`, `a tool output part of type "${String(part.type)}"`);
      return part.text as string;
    })
    .join("");
}

function chatTool(tool: Json, param: string): Json {
  if (tool.type !== "function") throw unsupported(`${param}.type`, `a tool of type "${String(tool.type)}"`);
  const fn: Json = { name: tool.name };
  if (tool.description != null) fn.description = tool.description;
  if (tool.parameters != null) fn.parameters = tool.parameters;
  if (tool.strict != null) fn.strict = tool.strict;
  return { type: "function", function: fn };
}

function chatToolChoice(choice: string | Json): string | Json {
  if (typeof choice === "string") return choice;
  if (choice.type === "function") return { type: "function", function: { name: choice.name } };
  throw unsupported("tool_choice", `tool_choice of type "${String(choice.type)}"`);
}

function chatResponseFormat(format: Json): Json {
  if (format.type === "json_object") return { type: "json_object" };
  if (format.type !== "json_schema")
    throw unsupported("text.format.type", `text.format of type "${String(format.type)}"`);
  const schema: Json = { name: format.name, schema: format.schema };
  if (format.description != null) schema.description = format.description;
  if (format.strict != null) schema.strict = format.strict;
  return { type: "json_schema", json_schema: schema };
}
