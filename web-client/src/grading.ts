// Typed grading operations over the connection, and small pure helpers the
// assignment page uses (countdown wording, the score distribution's bars).
import type { Connection } from "./connection";
import { expectMsg, type AssignmentConfig, type AssignmentInfo, type ServerMsgOf, type SubmissionInfo } from "./protocol";

/** Assignments and grading as seen through the WebSocket. */
export class GradingApi {
  constructor(readonly conn: Connection) {}

  async get(course: string, folder: string): Promise<AssignmentInfo> {
    return expectMsg(await this.conn.request({ type: "assignment_get", course, folder }), "assignment").assignment;
  }

  async save(course: string, folder: string, config: AssignmentConfig): Promise<AssignmentInfo> {
    return expectMsg(await this.conn.request({ type: "assignment_save", course, folder, config }), "assignment").assignment;
  }

  async putTest(course: string, folder: string, name: string, content: string): Promise<AssignmentInfo> {
    return expectMsg(await this.conn.request({ type: "test_file_put", course, folder, name, content }), "assignment").assignment;
  }

  async deleteTest(course: string, folder: string, name: string): Promise<AssignmentInfo> {
    return expectMsg(await this.conn.request({ type: "test_file_delete", course, folder, name }), "assignment").assignment;
  }

  async readTest(course: string, folder: string, name: string): Promise<string> {
    return expectMsg(await this.conn.request({ type: "test_file_get", course, folder, name }), "test_file").content;
  }

  /** Start a check; its progress arrives as events carrying the returned id. */
  async check(course: string, folder: string): Promise<number | undefined> {
    return expectMsg(await this.conn.request({ type: "check", course, folder }), "check_started").id;
  }

  async submit(course: string, folder: string): Promise<SubmissionInfo> {
    return expectMsg(await this.conn.request({ type: "submit", course, folder }), "submission").submission;
  }

  async submission(id: number): Promise<SubmissionInfo> {
    return expectMsg(await this.conn.request({ type: "submission_get", submission: id }), "submission").submission;
  }

  async gradebook(course: string, folder: string): Promise<ServerMsgOf<"gradebook">> {
    return expectMsg(await this.conn.request({ type: "gradebook_get", course, folder }), "gradebook");
  }

  async progress(course: string): Promise<ServerMsgOf<"progress">> {
    return expectMsg(await this.conn.request({ type: "progress_get", course }), "progress");
  }

  async regrade(course: string, folder: string): Promise<number> {
    return expectMsg(await this.conn.request({ type: "regrade", course, folder }), "regraded").queued;
  }
}

/** "due in 2 d 3 h", "due in 5 min", "past due (3 h ago)". */
export function dueIn(dueMs: number, nowMs: number): string {
  const d = dueMs - nowMs;
  const span = (ms: number) => {
    const m = Math.floor(Math.abs(ms) / 60_000);
    if (m < 1) return "less than a minute";
    if (m < 60) return `${m} min`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${m % 60} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  };
  return d >= 0 ? `due in ${span(d)}` : `past due (${span(d)} ago)`;
}

/** A score as "7 / 10" (one decimal when needed). */
export function scoreText(score: number | undefined | null, max: number | undefined | null): string {
  const f = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));
  if (score === undefined || score === null) return max ? `– / ${f(max)}` : "–";
  return max !== undefined && max !== null ? `${f(score)} / ${f(max)}` : f(score);
}

/** Heights (0–100 %) of the distribution's bars, the tallest at 100. */
export function barHeights(counts: number[]): number[] {
  const top = Math.max(1, ...counts);
  return counts.map((c) => Math.round((c / top) * 100));
}

/** A best score as a share of the points possible, 0–100 (0 without points). */
export function percentOf(score: number | undefined | null, max: number): number {
  if (score === undefined || score === null || !(max > 0)) return 0;
  return Math.max(0, Math.min(100, Math.round((score / max) * 100)));
}
