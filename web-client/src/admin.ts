// Pure helpers of the admin dashboard: filtering and sorting the feed's
// sessions, the wording of sizes and durations, and the charts' lines.
import type { AdminSessionInfo } from "./protocol";

/** Columns the sessions table sorts by. */
export type SortKey = "username" | "state" | "path" | "run_age_ms" | "cpu_percent" | "memory_bytes" | "idle_ms" | "output_bytes" | "clients";

/** `running` matches every session with a live program (also detached ones). */
export type StateFilter = "all" | "running" | AdminSessionInfo["state"];

/** Sessions whose user or program contains `text` (case-insensitive) and whose state matches. */
export function filterSessions(list: AdminSessionInfo[], text: string, state: StateFilter): AdminSessionInfo[] {
  const needle = text.trim().toLowerCase();
  return list.filter((s) => {
    if (state === "running" ? !s.running : state !== "all" && s.state !== state) return false;
    if (!needle) return true;
    return s.username.toLowerCase().includes(needle) || (s.path ?? "").toLowerCase().includes(needle);
  });
}

/** A sorted copy; ties keep the username order. */
export function sortSessions(list: AdminSessionInfo[], key: SortKey, descending: boolean): AdminSessionInfo[] {
  const value = (s: AdminSessionInfo): string | number => {
    if (key === "path") return s.path ?? "";
    return s[key];
  };
  return [...list].sort((a, b) => {
    const va = value(a);
    const vb = value(b);
    const c = typeof va === "number" && typeof vb === "number" ? va - vb : String(va).localeCompare(String(vb));
    if (c !== 0) return descending ? -c : c;
    return a.username.localeCompare(b.username);
  });
}

/** `0 B`, `812 KiB`, `64.0 MiB`, `1.5 GiB`. */
export function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** `0 s`, `42 s`, `3 min 20 s`, `2 h 5 min`. */
export function durationText(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const hours = Math.floor(m / 60);
  return m % 60 ? `${hours} h ${m % 60} min` : `${hours} h`;
}

/** The share of `limit` that `value` is, 0-100 (0 without a limit). */
export function percent(value: number, limit: number): number {
  if (!(limit > 0)) return 0;
  return Math.min(100, Math.max(0, (value / limit) * 100));
}

/**
 * SVG polyline points for `values` in a `width`×`height` box: 0 at the
 * bottom, the largest value (at least 1) at four fifths of the height, so a
 * steady line does not look like a full one.
 */
export function chartPoints(values: number[], width: number, height: number): string {
  if (values.length === 0) return "";
  const max = Math.max(1, ...values) * 1.25;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values
    .map((v, i) => {
      const x = values.length > 1 ? i * step : width;
      const y = height - (Math.max(0, v) / max) * height;
      return `${round1(x)},${round1(y)}`;
    })
    .join(" ");
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}

/** Words for a map of counts (`{"exited": 3}` → `exited 3`), largest first; `none` when empty. */
export function countsText(counts: Record<string, number | undefined> | undefined): string {
  const entries = Object.entries(counts ?? {}).filter((e): e is [string, number] => (e[1] ?? 0) > 0);
  if (entries.length === 0) return "none";
  entries.sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return entries.map(([k, v]) => `${k.replace(/_/g, " ")} ${v}`).join(", ");
}
