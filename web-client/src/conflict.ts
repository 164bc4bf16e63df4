// Conflict logic: what to do when an open file changes elsewhere, and the three
// resolutions (keep mine / take theirs / keep both) — none of which loses a version.
import type { ServerMsgOf } from "./protocol";

/** Both sides of a conflict. */
export interface Conflict {
  path: string;
  /** The local (unsaved) text. */
  mine: string;
  /** The server's current text. */
  theirs: string;
  /** The server's current version. */
  theirsVersion: string;
}

/** The user's choice in the banner. */
export type Choice = "mine" | "theirs" | "both";

/** File operations a resolution needs. */
export interface ConflictOps {
  /** Write with a base version (null = create only). Rejects with `conflict` if it moved again. */
  write(path: string, content: string, baseVersion: string | null): Promise<{ version: string }>;
  /** True if a path exists in the workspace. */
  exists(path: string): boolean;
}

/** What the editor shows after a resolution. */
export interface Resolution {
  /** Text of the open file on the server now. */
  text: string;
  /** Its version. */
  version: string;
  /** For "keep both": where my version was saved. */
  copyPath?: string;
}

/** `dir/name (my copy).ext`, numbered until it does not exist. */
export function copyPathFor(path: string, exists: (p: string) => boolean): string {
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash + 1) : "";
  const name = path.slice(slash + 1);
  const dot = name.lastIndexOf(".");
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? name.slice(dot) : "";
  for (let n = 1; ; n++) {
    const label = n === 1 ? "my copy" : `my copy ${n}`;
    const candidate = `${dir}${stem} (${label})${ext}`;
    if (!exists(candidate)) return candidate;
  }
}

/**
 * Apply the user's choice.
 * - mine: my text is written over theirs (theirs stays in the version history);
 * - theirs: my text is first written as a version (so it stays in the history),
 *   then theirs is written back on top — the editor shows theirs;
 * - both: my text goes to a new file next to it; the open file shows theirs.
 */
export async function resolveConflict(choice: Choice, c: Conflict, ops: ConflictOps): Promise<Resolution> {
  switch (choice) {
    case "mine": {
      const { version } = await ops.write(c.path, c.mine, c.theirsVersion);
      return { text: c.mine, version };
    }
    case "theirs": {
      if (c.mine === c.theirs) return { text: c.theirs, version: c.theirsVersion };
      const saved = await ops.write(c.path, c.mine, c.theirsVersion);
      const { version } = await ops.write(c.path, c.theirs, saved.version);
      return { text: c.theirs, version };
    }
    case "both": {
      const copyPath = copyPathFor(c.path, ops.exists);
      await ops.write(copyPath, c.mine, null);
      return { text: c.theirs, version: c.theirsVersion, copyPath };
    }
  }
}

/** What an open tab should do about a `file_changed` event. */
export type ChangeAction =
  | { kind: "ignore" }
  | { kind: "reload" }
  | { kind: "conflict" }
  | { kind: "deleted" }
  | { kind: "renamed"; to: string };

/** The open tab's state, as far as this decision needs it. */
export interface OpenFileState {
  path: string;
  baseVersion: string | null;
  dirty: boolean;
}

/**
 * Decide what an open file does about a change event: unchanged versions and
 * our own writes are ignored; without local edits the tab refreshes by itself;
 * with local edits the user is asked (conflict banner).
 */
export function onFileChanged(
  tab: OpenFileState,
  ev: ServerMsgOf<"file_changed">,
  myConnectionId: string | undefined,
): ChangeAction {
  if (ev.kind === "renamed" && ev.from === tab.path) return { kind: "renamed", to: ev.path };
  if (ev.path !== tab.path) return { kind: "ignore" };
  if (ev.kind === "deleted") return { kind: "deleted" };
  if (ev.kind !== "written" && ev.kind !== "restored" && ev.kind !== "copied" && ev.kind !== "renamed") {
    return { kind: "ignore" };
  }
  if (ev.by_connection === myConnectionId) return { kind: "ignore" };
  if (ev.version !== undefined && ev.version === tab.baseVersion) return { kind: "ignore" };
  return tab.dirty ? { kind: "conflict" } : { kind: "reload" };
}
