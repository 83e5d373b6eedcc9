/** One server-sent event with an `event:` name, as vLLM frames the Responses and Messages streams. */
export function sseEvent(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}
