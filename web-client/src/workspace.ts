// Typed file operations over the connection (one request, one reply each).
import type { Connection } from "./connection";
import { expectMsg, type FileEntry, type ServerMsgOf, type TrashItem, type VersionInfo } from "./protocol";

/**
 * Most entries the file tree loads: the quota allows 5,000 per workspace, a program may make
 * more before it is stopped, and each page spends the file-operation rate limit.
 */
export const LIST_ALL_MAX = 10_000;

/** The student's workspace, as seen through the WebSocket. */
export class WorkspaceApi {
  constructor(private readonly conn: Connection) {}

  /**
   * Every entry, recursively, following the server's pages (each at most 1000 entries);
   * stops after `maxEntries` so a tree a program filled cannot make the browser hold it all.
   */
  async listAll(maxEntries = LIST_ALL_MAX): Promise<FileEntry[]> {
    const entries: FileEntry[] = [];
    let cursor: string | undefined;
    do {
      const req = { type: "list" as const, path: "", recursive: true };
      const page = expectMsg(await this.conn.request(cursor === undefined ? req : { ...req, cursor }), "listing");
      entries.push(...page.entries);
      cursor = page.next_cursor;
    } while (cursor !== undefined && entries.length < maxEntries);
    return entries;
  }

  /** Read a file. */
  async read(path: string): Promise<ServerMsgOf<"file">> {
    return expectMsg(await this.conn.request({ type: "read", path }), "file");
  }

  /** Write text; `baseVersion` null = create only. */
  async write(path: string, content: string, baseVersion: string | null): Promise<{ version: string }> {
    const req = { type: "write" as const, path, content, encoding: "utf8" as const };
    const msg = await this.conn.request(baseVersion === null ? req : { ...req, base_version: baseVersion });
    return expectMsg(msg, "written");
  }

  /** Create a folder. */
  async mkdir(path: string): Promise<FileEntry> {
    return expectMsg(await this.conn.request({ type: "mkdir", path }), "entry").entry;
  }

  /** Rename or move. */
  async rename(from: string, to: string): Promise<FileEntry> {
    return expectMsg(await this.conn.request({ type: "rename", from, to, overwrite: false }), "entry").entry;
  }

  /** Move to the trash. */
  async delete(path: string): Promise<string> {
    return expectMsg(await this.conn.request({ type: "delete", path }), "deleted").trash_id;
  }

  /** Kept versions, newest first. */
  async versions(path: string): Promise<VersionInfo[]> {
    return expectMsg(await this.conn.request({ type: "list_versions", path }), "versions").versions;
  }

  /** One earlier version's content. */
  async readVersion(path: string, version: string): Promise<ServerMsgOf<"file">> {
    return expectMsg(await this.conn.request({ type: "read_version", path, version }), "file");
  }

  /** Make an earlier version current. */
  async restoreVersion(path: string, version: string): Promise<ServerMsgOf<"written">> {
    return expectMsg(await this.conn.request({ type: "restore_version", path, version }), "written");
  }

  /** The trash. */
  async trash(): Promise<TrashItem[]> {
    return expectMsg(await this.conn.request({ type: "trash_list" }), "trash").items;
  }

  /** Restore a trash item. */
  async restoreTrash(trashId: string): Promise<FileEntry> {
    return expectMsg(await this.conn.request({ type: "trash_restore", trash_id: trashId }), "entry").entry;
  }
}

/** Decode the content of a `file` reply to text (base64 content is decoded as UTF-8 with replacement). */
export function fileText(f: ServerMsgOf<"file">): string {
  if (f.encoding === "utf8") return f.content;
  const bin = atob(f.content);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}
