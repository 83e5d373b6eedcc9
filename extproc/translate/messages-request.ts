/**
 * An Anthropic Messages request (`POST /v1/messages`, already validated) as the chat-completions request
 * for the same generation. What chat cannot express is refused (see docs/translation.md).
 */
import { malformed, unsupported } from "./refuse.js";

type Json = Record<string, unknown>;

/** The request fields read here (the validated body may carry more). */
export interface MessagesRequest {
  readonly model: string;
  readonly max_tokens: number;
  readonly messages: ReadonlyArray<{ readonly role: string; readonly content: string | ReadonlyArray<Json> }>;
  readonly system?: string | ReadonlyArray<Json> | null;
  readonly tools?: ReadonlyArray<Json> | null;
  readonly tool_choice?: Json | null;
  readonly stop_sequences?: ReadonlyArray<string> | null;
  readonly temperature?: number | null;
  readonly top_p?: number | null;
  readonly top_k?: number | null;
  readonly stream?: boolean | null;
  readonly metadata?: { readonly user_id?: string | null } | null;
  readonly mcp_servers?: ReadonlyArray<unknown> | null;
  readonly container?: unknown;
}

/** The chat-completions body for a Messages request. */
export function messagesToChat(request: MessagesRequest): Json {
  if (request.mcp_servers?.length) throw unsupported("mcp_servers", "mcp_servers (remote MCP tools)");
  if (request.container != null) throw unsupported("container", "container (code execution)");

  const messages: Json[] = [];
  const system = systemText(request.system);
  if (system) messages.push({ role: "system", content: system });
  request.messages.forEach((message, i) => addMessage(messages, message, `messages[${i}]`));

  const chat: Json = { model: request.model, messages, max_tokens: request.max_tokens };
  const tools = (request.tools ?? []).map((tool, i) => chatTool(tool, `tools[${i}]`));
  if (tools.length > 0) chat.tools = tools;
  if (request.tool_choice != null) Object.assign(chat, chatToolChoice(request.tool_choice));
  if (request.stop_sequences?.length) chat.stop = request.stop_sequences;
  for (const field of ["temperature", "top_p", "top_k"] as const)
    if (request[field] != null) chat[field] = request[field];
  if (request.metadata?.user_id != null) chat.user = request.metadata.user_id;
  if (request.stream) {
    chat.stream = true;
    chat.stream_options = { include_usage: true };
  }
  // `thinking` is not forwarded: chat has no thinking budget. A reasoning model on the pool reasons as its
  // chat template says, and its reasoning comes back as thinking blocks.
  return chat;
}

/** The system prompt's text; blocks are joined by newlines as vLLM joins text content parts. */
function systemText(system: MessagesRequest["system"]): string {
  if (system == null) return "";
  if (typeof system === "string") return system;
  return system
    .map((block, i) => {
      if (block.type !== "text")
        throw unsupported(`system[${i}].type`, `a system block of type "${String(block.type)}"`);
      return block.text as string;
    })
    .join("\n");
}

/**
 * Appends the chat messages for one Messages turn. A user turn's tool_result blocks become tool messages,
 * placed first (they answer the previous assistant turn's calls, as chat requires); its other blocks are
 * one user message after them. An assistant turn's tool_use blocks become its tool_calls.
 */
function addMessage(messages: Json[], message: MessagesRequest["messages"][number], param: string): void {
  const { role } = message;
  if (typeof message.content === "string") {
    messages.push({ role, content: message.content });
    return;
  }
  const parts: Json[] = [];
  const toolCalls: Json[] = [];
  const toolResults: Json[] = [];
  message.content.forEach((block, i) => {
    const at = `${param}.content[${i}]`;
    switch (block.type) {
      case "text":
        parts.push({ type: "text", text: block.text });
        return;
      case "image":
        if (role !== "user") throw unsupported(`${at}.type`, `an image in an ${role} turn`);
        parts.push({
          type: "image_url",
          image_url: { url: imageUrl(block.source as Json | undefined, `${at}.source`) },
        });
        return;
      case "tool_use":
        if (role !== "assistant") throw unsupported(`${at}.type`, "tool_use outside an assistant turn");
        toolCalls.push({
          id: block.id,
          type: "function",
          function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) },
        });
        return;
      case "tool_result":
        if (role !== "user") throw unsupported(`${at}.type`, "tool_result outside a user turn");
        // `is_error` has no chat field; the result's text (which says what failed) is what the model reads,
        // as on vLLM's own Messages endpoint.
        toolResults.push({
          role: "tool",
          tool_call_id: block.tool_use_id,
          content: toolResultText(block.content, `${at}.content`),
        });
        return;
      case "thinking":
      case "redacted_thinking":
        // Earlier turns' thinking is not part of the context (Anthropic strips it too).
        return;
      default:
        throw unsupported(`${at}.type`, `a content block of type "${String(block.type)}"`);
    }
  });
  messages.push(...toolResults);
  if (role === "assistant") {
    if (parts.length > 0 || toolCalls.length > 0) {
      const turn: Json = { role, content: parts.length > 0 ? joinText(parts) : null };
      if (toolCalls.length > 0) turn.tool_calls = toolCalls;
      messages.push(turn);
    }
  } else if (parts.length > 0 || toolResults.length === 0) {
    messages.push({ role, content: parts.every((p) => p.type === "text") ? joinText(parts) : parts });
  }
}

function joinText(parts: Json[]): string {
  return parts.map((part) => part.text as string).join("");
}

/** An image source as a URL chat's image_url reads: a data: URL for base64 data. */
function imageUrl(source: Json | undefined, param: string): string {
  if (source == null) throw malformed(param, "an image source (base64 data or a URL)");
  if (source.type === "base64") return `data:${String(source.media_type)};base64,${String(source.data)}`;
  if (source.type === "url") return source.url as string;
  throw unsupported(`${param}.type`, `an image source of type "${String(source.type)}"`);
}

/** A tool_result's content as text: chat tool messages carry text only. */
function toolResultText(content: unknown, param: string): string {
  if (content == null) return "";
  if (typeof content === "string") return content;
  return (content as Json[])
    .map((block, i) => {
      if (block.type !== "text")
        throw unsupported(`${param}[${i}].type`, `a tool_result block of type "${String(block.type)}"`);
      return block.text as string;
    })
    .join("");
}

function chatTool(tool: Json, param: string): Json {
  // Client tools have no type (or "custom"); typed ones (bash_…, web_search_…, computer_…) are Anthropic's.
  if (tool.type != null && tool.type !== "custom")
    throw unsupported(`${param}.type`, `the server tool "${String(tool.type)}"`);
  const fn: Json = { name: tool.name, parameters: tool.input_schema };
  if (tool.description != null) fn.description = tool.description;
  return { type: "function", function: fn };
}

/** tool_choice (and disable_parallel_tool_use) as chat's tool_choice and parallel_tool_calls. */
function chatToolChoice(choice: Json): Json {
  const fields: Json = {};
  switch (choice.type) {
    case "auto":
      fields.tool_choice = "auto";
      break;
    case "any":
      fields.tool_choice = "required";
      break;
    case "none":
      fields.tool_choice = "none";
      break;
    case "tool":
      fields.tool_choice = { type: "function", function: { name: choice.name } };
      break;
    default:
      throw unsupported("tool_choice.type", `tool_choice of type "${String(choice.type)}"`);
  }
  if (choice.disable_parallel_tool_use === true) fields.parallel_tool_calls = false;
  return fields;
}
