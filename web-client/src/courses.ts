// Typed course operations over the connection (one request, one reply each).
import type { Connection } from "./connection";
import { expectMsg, type CourseInfo, type CourseRole, type CourseSummary, type FileEntry, type ReleaseInfo, type SectionInfo, type ServerMsgOf } from "./protocol";

/** The HTTP URL of a material file (streamed; same rules as the messages). */
export function materialUrl(course: string, path: string): string {
  return `/api/courses/${encodeURIComponent(course)}/files/` + path.split("/").map(encodeURIComponent).join("/");
}

/** Courses as seen through the WebSocket. */
export class CoursesApi {
  constructor(readonly conn: Connection) {}

  async list(): Promise<CourseSummary[]> {
    return expectMsg(await this.conn.request({ type: "course_list" }), "courses").courses;
  }

  async create(slug: string, title: string, term: string): Promise<CourseInfo> {
    return expectMsg(await this.conn.request({ type: "course_create", slug, title, term }), "course").course;
  }

  async open(course: string): Promise<CourseInfo> {
    return expectMsg(await this.conn.request({ type: "course_open", course }), "course").course;
  }

  async files(course: string, path = ""): Promise<FileEntry[]> {
    return expectMsg(await this.conn.request({ type: "course_list_files", course, path }), "course_listing").entries;
  }

  async read(course: string, path: string): Promise<ServerMsgOf<"course_file">> {
    return expectMsg(await this.conn.request({ type: "course_read", course, path }), "course_file");
  }

  async write(course: string, path: string, content: string, baseVersion: string | null): Promise<ServerMsgOf<"course_written">> {
    const req = { type: "course_write" as const, course, path, content, encoding: "utf8" as const };
    return expectMsg(await this.conn.request(baseVersion === null ? req : { ...req, base_version: baseVersion }), "course_written");
  }

  async delete(course: string, path: string): Promise<void> {
    expectMsg(await this.conn.request({ type: "course_delete", course, path }), "course_written");
  }

  async copy(course: string, path: string): Promise<ServerMsgOf<"course_copied">> {
    return expectMsg(await this.conn.request({ type: "course_copy", course, path }), "course_copied");
  }

  async saveSection(course: string, s: { section?: number; folder: string; title: string; kind: string; published: boolean; release_at_ms?: number; close_at_ms?: number }): Promise<CourseInfo> {
    return expectMsg(await this.conn.request({ type: "section_save", course, ...s }), "course").course;
  }

  async deleteSection(course: string, section: number): Promise<CourseInfo> {
    return expectMsg(await this.conn.request({ type: "section_delete", course, section }), "course").course;
  }

  async setException(course: string, section: number, username: string, release_at_ms?: number, close_at_ms?: number): Promise<CourseInfo> {
    const req = { type: "exception_set" as const, course, section, username };
    return expectMsg(
      await this.conn.request({ ...req, ...(release_at_ms !== undefined ? { release_at_ms } : {}), ...(close_at_ms !== undefined ? { close_at_ms } : {}) }),
      "course",
    ).course;
  }

  async removeException(course: string, section: number, username: string): Promise<CourseInfo> {
    return expectMsg(await this.conn.request({ type: "exception_remove", course, section, username }), "course").course;
  }

  /** Give one file or folder inside a section its own visibility (professors). */
  async setRelease(course: string, path: string, published: boolean, release_at_ms?: number, close_at_ms?: number): Promise<CourseInfo> {
    const req = { type: "release_set" as const, course, path, published };
    return expectMsg(
      await this.conn.request({ ...req, ...(release_at_ms !== undefined ? { release_at_ms } : {}), ...(close_at_ms !== undefined ? { close_at_ms } : {}) }),
      "course",
    ).course;
  }

  /** Make a path follow its section's visibility again (professors). */
  async removeRelease(course: string, path: string): Promise<CourseInfo> {
    return expectMsg(await this.conn.request({ type: "release_remove", course, path }), "course").course;
  }

  async roster(course: string): Promise<ServerMsgOf<"roster">["members"]> {
    return expectMsg(await this.conn.request({ type: "roster_get", course }), "roster").members;
  }

  async enroll(course: string, username: string, role: CourseRole): Promise<ServerMsgOf<"roster">["members"]> {
    return expectMsg(await this.conn.request({ type: "enroll", course, username, role }), "roster").members;
  }

  async unenroll(course: string, username: string): Promise<ServerMsgOf<"roster">["members"]> {
    return expectMsg(await this.conn.request({ type: "unenroll", course, username }), "roster").members;
  }

  async importRoster(course: string, csv: string, createAccounts: boolean): Promise<ServerMsgOf<"roster_result">> {
    return expectMsg(await this.conn.request({ type: "roster_import", course, csv, create_accounts: createAccounts }), "roster_result");
  }

  async studentFiles(course: string, student: string): Promise<FileEntry[]> {
    return expectMsg(await this.conn.request({ type: "student_list_files", course, student, path: "" }), "course_listing").entries;
  }

  async studentRead(course: string, student: string, path: string): Promise<ServerMsgOf<"course_file">> {
    return expectMsg(await this.conn.request({ type: "student_read", course, student, path }), "course_file");
  }

  async studentVersions(course: string, student: string, path: string): Promise<ServerMsgOf<"student_versions">["versions"]> {
    return expectMsg(await this.conn.request({ type: "student_versions", course, student, path }), "student_versions").versions;
  }

  async studentReadVersion(course: string, student: string, path: string, version: string): Promise<ServerMsgOf<"course_file">> {
    return expectMsg(await this.conn.request({ type: "student_read_version", course, student, path, version }), "course_file");
  }

  async studentRuns(course: string, student: string): Promise<ServerMsgOf<"student_runs">["runs"]> {
    return expectMsg(await this.conn.request({ type: "student_runs", course, student }), "student_runs").runs;
  }
}

/** A time in the viewer's time zone, e.g. "Thu 3 Dec, 10:00". */
export function localTime(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

/** `ms` as the value of an `<input type="datetime-local">` (local time). */
export function toLocalInput(ms: number | undefined): string {
  if (ms === undefined) return "";
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The value of an `<input type="datetime-local">` as ms since the epoch (undefined if empty). */
export function fromLocalInput(v: string): number | undefined {
  if (!v) return undefined;
  const t = new Date(v).getTime();
  return Number.isNaN(t) ? undefined : t;
}

/** The per-file rule that covers `path` in section `s` (its own, or its folder's). */
export function ruleFor(s: SectionInfo, path: string): ReleaseInfo | undefined {
  return (s.releases ?? []).find((r) => path === r.path || path.startsWith(r.path + "/"));
}
