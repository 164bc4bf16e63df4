// The admin dashboard (#/admin): every session live (pushed by the server
// every second over the WebSocket, nothing polls), sortable and filterable,
// with stop / disconnect / disable actions behind a confirmation; the
// server's health (connections, sandboxes and slots, runs and refusals per
// minute, grading queue, disk, database) and the last hour's charts.
import { bytesText, chartPoints, countsText, durationText, filterSessions, percent, sortSessions, type SortKey, type StateFilter } from "../admin";
import { logout, me } from "../api";
import { Connection } from "../connection";
import { expectMsg, type AdminPoint, type AdminSessionInfo, type ServerMsgOf } from "../protocol";
import type { View } from "../router";
import { confirmDialog } from "../ui/dialog";
import { h, setChildren } from "../ui/dom";
import { Notices } from "../ui/notices";

type Feed = ServerMsgOf<"admin_feed">;

const STATE_LABEL: Record<AdminSessionInfo["state"], string> = {
  idle: "idle",
  script: "running a script",
  repl: "in the REPL",
  detached: "detached",
};

const COLUMNS: { key: SortKey; label: string; numeric?: boolean }[] = [
  { key: "username", label: "User" },
  { key: "state", label: "State" },
  { key: "path", label: "Program" },
  { key: "run_age_ms", label: "Run age", numeric: true },
  { key: "cpu_percent", label: "CPU", numeric: true },
  { key: "memory_bytes", label: "Memory", numeric: true },
  { key: "idle_ms", label: "Idle", numeric: true },
  { key: "output_bytes", label: "Output", numeric: true },
  { key: "clients", label: "Clients", numeric: true },
];

declare global {
  interface Window {
    /** The dashboard's connection and last feed, for the browser tests. */
    campusAdmin?: { conn: Connection; feed: Feed | null };
  }
}

function card(label: string, value: string, detail?: string, state?: "ok" | "warn" | "bad"): HTMLElement {
  return h(
    "div.admin-card",
    { dataset: { state: state ?? "ok", label } },
    h("div.admin-card-label", null, label),
    h("div.admin-card-value", null, value),
    detail ? h("div.admin-card-detail.muted", null, detail) : null,
  );
}

const SVG = "http://www.w3.org/2000/svg";

function chart(label: string, points: AdminPoint[], pick: (p: AdminPoint) => number): HTMLElement {
  const values = points.map(pick);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 200 40");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-hidden", "true");
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", chartPoints(values, 200, 38));
  svg.appendChild(line);
  const now = values.length ? values[values.length - 1] : 0;
  const max = values.length ? Math.max(...values) : 0;
  const span = points.length > 1 ? durationText(points[points.length - 1].at_ms - points[0].at_ms) : "now";
  return h(
    "figure.admin-chart",
    { role: "img", "aria-label": `${label}: ${now} now, at most ${max} over the last ${span}` },
    h("figcaption", null, h("span", null, label), h("span.muted", null, ` ${now} now · max ${max} · last ${span}`)),
    svg as unknown as HTMLElement,
  );
}

export const adminView: View = {
  roles: ["admin"],
  mount(ctx) {
    const user = ctx.user!;
    const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
    const conn = new Connection({ url: wsUrl, checkAuth: async () => (await me().catch(() => user)) !== null });
    const notices = new Notices();
    window.campusAdmin = { conn, feed: null };
    document.title = "Admin — Campus";

    // By name: rows stay where they are between ticks (a busy column would
    // reorder them under the pointer every second); a click on CPU or Memory
    // puts the busiest on top.
    let sortKey: SortKey = "username";
    let descending = false;
    let filterText = "";
    let stateFilter: StateFilter = "all";
    let feed: Feed | null = null;

    // Not a live region: it changes every second.
    const status = h("span.admin-status.muted", null, "Connecting…");
    const logoutBtn = h("button", {
      type: "button",
      onclick: async () => {
        conn.close("logged_out");
        await logout().catch(() => undefined);
        ctx.refreshUser(null);
      },
    }, "Log out");
    const header = h(
      "header.topbar",
      null,
      h("span.brand", null, "Campus"),
      h("a.button", { href: "#/ide" }, "← My workspace"),
      h("span.admin-title", null, "Admin"),
      status,
      h("span.spacer"),
      h("span.user", { title: `Logged in as ${user.username} (admin)` }, user.username),
      logoutBtn,
    );
    const cards = h("section.admin-cards", { "aria-label": "Server health" });
    const charts = h("section.admin-charts", { "aria-label": "The last hour" });
    const rates = h("section.admin-rates", { "aria-label": "The last minute" });
    const search = h("input", {
      type: "search",
      placeholder: "Filter by user or program",
      "aria-label": "Filter sessions by user or program",
      oninput: () => {
        filterText = search.value;
        renderTable();
      },
    });
    const stateSelect = h(
      "select",
      {
        "aria-label": "Filter sessions by state",
        onchange: () => {
          stateFilter = stateSelect.value as StateFilter;
          renderTable();
        },
      },
      h("option", { value: "all" }, "All states"),
      h("option", { value: "running" }, "Running a program"),
      h("option", { value: "script" }, "Running a script"),
      h("option", { value: "repl" }, "In the REPL"),
      h("option", { value: "idle" }, "Idle"),
      h("option", { value: "detached" }, "Detached"),
    );
    const shown = h("span.muted");
    const disabledList = h("section.admin-disabled", { "aria-label": "Disabled accounts" }, h("p.muted", null, "Loading…"));
    const headRow = h("tr");
    const tbody = h("tbody");
    const table = h("table.admin-sessions", { "aria-label": "Sessions" }, h("thead", null, headRow), tbody);
    const main = h(
      "main.admin-page",
      { tabIndex: -1 },
      h("h1", null, "Sessions and health"),
      cards,
      h("div.admin-row", null, charts, rates),
      h("h2", null, "Sessions"),
      h("div.admin-filters", null, search, stateSelect, shown),
      h("div.admin-table-wrap", null, table),
      h("h2", null, "Disabled accounts"),
      disabledList,
    );
    ctx.root.append(h("div.admin-view", null, header, main, notices.el));

    const renderHead = () => {
      setChildren(
        headRow,
        COLUMNS.map((c) =>
          h(
            "th",
            { scope: "col", "aria-sort": c.key === sortKey ? (descending ? "descending" : "ascending") : "none", className: c.numeric ? "num" : "" },
            h(
              "button.sort",
              {
                type: "button",
                onclick: () => {
                  if (sortKey === c.key) descending = !descending;
                  else {
                    sortKey = c.key;
                    descending = c.numeric === true;
                  }
                  renderHead();
                  renderTable();
                },
              },
              c.label,
              c.key === sortKey ? (descending ? " ▾" : " ▴") : "",
            ),
          ),
        ),
        h("th", { scope: "col" }, "Actions"),
      );
    };

    const act = async (s: AdminSessionInfo, kind: "stop" | "disconnect" | "disable") => {
      const ask = {
        stop: ["Stop this run?", `Stop ${s.username}'s ${s.path ?? "program"}? They are told an administrator stopped it.`, "Stop run"],
        disconnect: ["Disconnect this user?", `Close every connection of ${s.username}? Their page says an administrator ended it; they can reconnect.`, "Disconnect"],
        disable: ["Disable this account?", `Disable ${s.username}? They are signed out everywhere at once, their run is stopped, and they cannot log in until an admin enables the account again.`, "Disable account"],
      }[kind];
      if (!(await confirmDialog(ask[0], ask[1], ask[2]))) return;
      try {
        const msg =
          kind === "stop"
            ? await conn.request({ type: "admin_stop_run", user_id: s.user_id, run_id: s.run_id })
            : kind === "disconnect"
              ? await conn.request({ type: "admin_disconnect", user_id: s.user_id })
              : await conn.request({ type: "admin_set_disabled", user_id: s.user_id, disabled: true });
        notices.show(expectMsg(msg, "admin_done").message);
        if (kind === "disable") void loadAccounts();
      } catch (e) {
        notices.error(`Could not ${kind === "stop" ? "stop the run" : kind === "disconnect" ? "disconnect" : "disable the account"}`, e);
      }
    };

    const row = (s: AdminSessionInfo, limit: number): HTMLElement => {
      const mem = s.running
        ? h(
            "div.admin-mem",
            { title: `peak ${bytesText(s.peak_memory_bytes)} of ${bytesText(limit)}` },
            h("div.admin-mem-bar", null, h("div.admin-mem-fill", { style: { width: `${percent(s.memory_bytes, limit)}%` } })),
            h("span", null, `${bytesText(s.memory_bytes)} / ${bytesText(limit)}`),
          )
        : h("span.muted", null, "–");
      return h(
        "tr",
        { dataset: { user: s.username, state: s.state, running: String(s.running) } },
        h("th", { scope: "row" }, s.username),
        h("td", null, h("span.state", { dataset: { state: s.state } }, STATE_LABEL[s.state]), s.running && s.state === "detached" ? h("span.muted", null, " (still running)") : null),
        h("td.path", null, s.path ?? (s.running ? "REPL" : "")),
        h("td.num", null, s.running ? durationText(s.run_age_ms) : ""),
        h("td.num.cpu", null, s.running ? `${Math.round(s.cpu_percent)} %` : ""),
        h("td.mem", null, mem),
        h("td.num", null, s.running ? "" : durationText(s.idle_ms)),
        h("td.num", null, s.running ? bytesText(s.output_bytes) : ""),
        h("td.num", null, String(s.clients)),
        h(
          "td",
          null,
          h(
            "div.actions",
            null,
            h("button", { type: "button", disabled: !s.running, onclick: () => void act(s, "stop"), "aria-label": `Stop ${s.username}'s run` }, "Stop"),
          h("button", { type: "button", disabled: s.clients === 0, onclick: () => void act(s, "disconnect"), "aria-label": `Disconnect ${s.username}` }, "Disconnect"),
          h("button.danger", { type: "button", disabled: s.user_id === user.id, onclick: () => void act(s, "disable"), "aria-label": `Disable ${s.username}` }, "Disable"),
          ),
        ),
      );
    };

    // A click in progress (pointer down on the table) holds the next
    // re-render until it is done, so the button under the pointer stays.
    let holding = false;
    let held = false;
    table.addEventListener("pointerdown", () => (holding = true));
    const released = () => {
      holding = false;
      if (held) {
        held = false;
        setTimeout(renderTable, 0);
      }
    };
    window.addEventListener("pointerup", released);
    const renderTable = () => {
      if (!feed) return;
      if (holding) {
        held = true;
        return;
      }
      const list = sortSessions(filterSessions(feed.sessions, filterText, stateFilter), sortKey, descending);
      const limit = feed.totals.memory_limit_bytes;
      // Keep the focused action button's row when it is still there.
      const focused = document.activeElement instanceof HTMLElement ? document.activeElement.getAttribute("aria-label") : null;
      setChildren(tbody, list.length ? list.map((s) => row(s, limit)) : h("tr", null, h("td.muted", { colSpan: COLUMNS.length + 1 }, feed.sessions.length ? "No session matches the filter." : "No sessions right now.")));
      if (focused) {
        const again = tbody.querySelector<HTMLButtonElement>(`[aria-label="${CSS.escape(focused)}"]`);
        if (again && !again.disabled) again.focus({ preventScroll: true });
      }
      shown.textContent = `${list.length} of ${feed.totals.sessions} sessions${feed.truncated ? " (the busiest shown)" : ""}`;
    };

    const render = (f: Feed) => {
      feed = f;
      window.campusAdmin!.feed = f;
      const t = f.totals;
      const slotsState = t.sandbox_slots > 0 && t.sandboxes_running >= t.sandbox_slots ? "bad" : t.sandbox_waiting > 0 ? "warn" : "ok";
      const diskShare = percent(t.disk_total_bytes - t.disk_free_bytes, t.disk_total_bytes);
      setChildren(
        cards,
        card("Connections", String(t.connections)),
        card("Sessions", String(t.sessions), `${t.by_state.script} script · ${t.by_state.repl} REPL · ${t.by_state.idle} idle · ${t.by_state.detached} detached`),
        card("Sandboxes", `${t.sandboxes_running} / ${t.sandbox_slots}`, t.sandbox_waiting ? `${t.sandbox_waiting} waiting for a slot` : "none waiting", slotsState),
        card("Runs / min", String(t.runs_per_min)),
        t.grading_queue !== undefined
          ? card("Grading queue", String(t.grading_queue), t.grading_queue ? `oldest waiting ${durationText(t.grading_oldest_ms ?? 0)}` : "empty", (t.grading_oldest_ms ?? 0) > 10 * 60_000 ? "bad" : "ok")
          : card("Grading queue", "?", "the database does not answer", "warn"),
        card("Disk free", bytesText(t.disk_free_bytes), `${Math.round(diskShare)} % of ${bytesText(t.disk_total_bytes)} used`, diskShare > 95 ? "bad" : diskShare > 85 ? "warn" : "ok"),
        card("Database", t.database_up ? "up" : "down", undefined, t.database_up ? "ok" : "bad"),
      );
      setChildren(
        charts,
        chart("Sessions", f.history, (p) => p.sessions),
        chart("Sandboxes running", f.history, (p) => p.sandboxes_running),
        chart("Runs per minute", f.history, (p) => p.runs_per_min),
      );
      setChildren(
        rates,
        h("h2", null, "Last minute"),
        h("dl", null, h("dt", null, "Runs ended"), h("dd", { dataset: { what: "ended" } }, countsText(t.ended_per_min)), h("dt", null, "Refusals"), h("dd", { dataset: { what: "refusals" } }, countsText(t.refusals_per_min))),
      );
      status.textContent = `live · ${new Date(Number(f.at_ms)).toLocaleTimeString()}`;
      renderTable();
    };

    // Disabled accounts have no session, so they are listed apart, to be enabled again.
    const loadAccounts = async () => {
      try {
        const accounts = expectMsg(await conn.request({ type: "admin_accounts" }), "admin_accounts").accounts.filter((a) => a.disabled);
        setChildren(
          disabledList,
          accounts.length === 0
            ? h("p.muted", null, "None.")
            : h(
                "ul.admin-disabled-list",
                null,
                accounts.map((a) =>
                  h(
                    "li",
                    { dataset: { user: a.username } },
                    h("span", null, `${a.username} (${a.role})`),
                    " ",
                    h(
                      "button",
                      {
                        type: "button",
                        "aria-label": `Enable ${a.username}`,
                        onclick: async () => {
                          try {
                            const m = await conn.request({ type: "admin_set_disabled", user_id: a.user_id, disabled: false });
                            notices.show(expectMsg(m, "admin_done").message);
                          } catch (e) {
                            notices.error("Could not enable the account", e);
                          }
                          void loadAccounts();
                        },
                      },
                      "Enable",
                    ),
                  ),
                ),
              ),
        );
      } catch (e) {
        notices.error("Could not list the accounts", e);
      }
    };

    renderHead();
    conn.on("message", (m) => {
      if (m.type === "admin_feed") render(m);
    });
    conn.on("hello", () => {
      conn.request({ type: "admin_watch" }).then(
        (m) => expectMsg(m, "admin_done"),
        (e) => notices.error("Could not start the live view", e),
      );
      void loadAccounts();
    });
    conn.on("state", (s) => {
      if (s.kind !== "open") status.textContent = s.kind === "closed" ? "disconnected" : "reconnecting…";
    });
    conn.start();
    return () => {
      window.removeEventListener("pointerup", released);
      conn.close("logged_out");
      delete window.campusAdmin;
    };
  },
};
