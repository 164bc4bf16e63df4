// HTTP calls: login/logout/me and the files API (uploads, downloads, viewers).
import { CampusError, type ErrorCode, type UserInfo } from "./protocol";
import { filesUrl } from "./ui/dom";

/** Turn a non-2xx response into a CampusError (JSON body `{code,message,retry_after_ms}`). */
async function failure(res: Response): Promise<CampusError> {
  let code: ErrorCode = "internal";
  let message = `${res.status} ${res.statusText}`;
  let retry: number | undefined;
  try {
    const body = (await res.json()) as { code?: ErrorCode; message?: string; retry_after_ms?: number };
    if (body.code) code = body.code;
    if (body.message) message = body.message;
    retry = body.retry_after_ms;
  } catch {
    if (res.status === 401) code = "unauthorized";
    else if (res.status === 412) code = "conflict";
    else if (res.status === 413) code = "too_large";
    else if (res.status === 429) code = "rate_limited";
  }
  if (retry === undefined) {
    const ra = res.headers.get("Retry-After");
    if (ra && /^\d+$/.test(ra)) retry = Number(ra) * 1000;
  }
  if (res.status === 412) code = "conflict";
  return new CampusError(code, message, retry, res.headers.get("ETag") ?? undefined);
}

/** Something the user should know right after logging in (e.g. the server's disk is full). */
export interface LoginWarning {
  code: ErrorCode;
  message: string;
}

/** Where a login warning waits for the IDE to show it (the page changes view in between). */
export const LOGIN_WARNING_KEY = "campus.loginWarning";
/** sessionStorage key: why the IDE's session ended (shown once by the login view). */
export const SIGNED_OUT_KEY = "campus.signedOut";

/** Log in; the server also sets the HttpOnly session cookie. */
export async function login(username: string, password: string): Promise<{ user: UserInfo; warning?: LoginWarning }> {
  const res = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
    credentials: "same-origin",
  });
  if (!res.ok) throw await failure(res);
  const body = (await res.json()) as { user: UserInfo; warning?: LoginWarning };
  return { user: body.user, warning: body.warning };
}

/** Log out (clears the cookie). JSON, like login: the server refuses other bodies. */
export async function logout(): Promise<void> {
  await fetch("/api/auth/logout", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
    credentials: "same-origin",
  });
}

/** The logged-in user, or null. */
export async function me(): Promise<UserInfo | null> {
  const res = await fetch("/api/auth/me", { credentials: "same-origin", cache: "no-store" });
  if (res.status === 401) return null;
  if (!res.ok) throw await failure(res);
  const body = (await res.json()) as UserInfo | { user: UserInfo };
  return "user" in body ? body.user : body;
}

/** Upload bytes to `path`: create only unless `ifMatch` (a version) is given. */
export async function putFile(path: string, body: Blob | ArrayBuffer, ifMatch?: string): Promise<string | null> {
  const headers: Record<string, string> = { "Content-Type": "application/octet-stream" };
  if (ifMatch) headers["If-Match"] = ifMatch.startsWith('"') ? ifMatch : `"${ifMatch}"`;
  else headers["If-None-Match"] = "*";
  const res = await fetch(filesUrl(path), { method: "PUT", headers, body, credentials: "same-origin" });
  if (!res.ok) throw await failure(res);
  return res.headers.get("ETag");
}

/** Download a file's text (CSV viewer). */
export async function getText(path: string, urlOf: (p: string) => string = filesUrl): Promise<string> {
  const res = await fetch(urlOf(path), { credentials: "same-origin", cache: "no-store" });
  if (!res.ok) throw await failure(res);
  return res.text();
}
