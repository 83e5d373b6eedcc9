/** Calendar windows (UTC) for per-day and per-month limits. */

/** `2026-11-22` and the epoch ms at which that UTC day ends. */
export function dayWindow(now: number): { id: string; endsAt: number } {
  const d = new Date(now);
  return {
    id: d.toISOString().slice(0, 10),
    endsAt: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1),
  };
}

/** `2026-11` and the epoch ms at which that UTC month ends. */
export function monthWindow(now: number): { id: string; endsAt: number } {
  const d = new Date(now);
  return { id: d.toISOString().slice(0, 7), endsAt: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
}

/** OpenAI's duration style for x-ratelimit-reset-*: `250ms`, `1.5s`, `6m0s`, `2h3m0s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const totalSeconds = ms / 1000;
  if (totalSeconds < 60) return `${Number(totalSeconds.toFixed(3))}s`;
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = Math.floor(totalSeconds % 60);
  return `${hours > 0 ? `${hours}h` : ""}${minutes}m${seconds}s`;
}
