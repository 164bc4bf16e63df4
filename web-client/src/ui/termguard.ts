// What a student's program may make the browser's terminal do. Program output is hostile
// (docs/security.md, "Terminal output"): the server forwards it byte for byte, and this
// module decides, per escape sequence, what xterm.js may act on.
import type { IDisposable, ILinkHandler, Terminal } from "@xterm/xterm";

/** OSC numbers swallowed whole: 52 clipboard write/read, 0/1/2 window and icon title. */
export const DROPPED_OSC = [0, 1, 2, 52] as const;

/**
 * OSC numbers whose `?` form asks the terminal to answer with its colours (palette,
 * foreground, background, cursor, ...): the query is dropped, setting a colour still works.
 */
export const QUERY_OSC = [4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19] as const;

/**
 * Control sequences that make the terminal answer back (the reply is typed into the
 * program's input): DA1 `CSI c`, DA2 `CSI > c`, DA3 `CSI = c`, DECRQM `CSI ? Ps $ p` and
 * `CSI Ps $ p`, window reports `CSI Ps t`, XTVERSION `CSI > q`. DSR (`CSI 5 n`, `CSI 6 n`,
 * the cursor position) is kept: line editors need it and it answers with digits only.
 */
const ANSWERING_CSI = [
  { final: "c" },
  { prefix: ">", final: "c" },
  { prefix: "=", final: "c" },
  { prefix: "?", intermediates: "$", final: "p" },
  { intermediates: "$", final: "p" },
  { final: "t" },
  { prefix: ">", final: "q" },
] as const;

/** Device control strings that answer back: DECRQSS `DCS $ q`, XTGETTCAP `DCS + q`. */
const ANSWERING_DCS = [
  { intermediates: "$", final: "q" },
  { intermediates: "+", final: "q" },
] as const;

/** Only these schemes of an OSC 8 hyperlink can be opened. */
const LINK_SCHEMES = new Set(["http:", "https:"]);

/** The URL of an OSC 8 link if it may be offered for opening (http/https only), else null. */
export function openableLink(uri: string): URL | null {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return null;
  }
  return LINK_SCHEMES.has(url.protocol) ? url : null;
}

/** What clicking an OSC 8 link does: confirm with the real address, then a new tab with no opener. */
export function safeLinkHandler(confirmOpen: (message: string) => boolean = (m) => window.confirm(m)): ILinkHandler {
  return {
    allowNonHttpProtocols: false,
    activate(event: MouseEvent, text: string): void {
      event.preventDefault();
      const url = openableLink(text);
      if (!url) return;
      const ok = confirmOpen(`Your program printed a link to\n\n${url.href}\n\nOpen it in a new tab? (It leaves Campus; only open addresses you trust.)`);
      if (ok) window.open(url.href, "_blank", "noopener,noreferrer");
    },
  };
}

/** Install the filters on `term`; dispose the result to remove them. */
export function guardTerminal(term: Terminal): IDisposable {
  const parser = term.parser;
  const handlers: IDisposable[] = [
    ...DROPPED_OSC.map((n) => parser.registerOscHandler(n, () => true)),
    // Returning false hands a colour *setting* on to xterm's own handler.
    ...QUERY_OSC.map((n) => parser.registerOscHandler(n, (data) => data.split(";").includes("?"))),
    ...ANSWERING_CSI.map((id) => parser.registerCsiHandler(id, () => true)),
    ...ANSWERING_DCS.map((id) => parser.registerDcsHandler(id, () => true)),
  ];
  return { dispose: () => handlers.forEach((h) => h.dispose()) };
}
