// Viewers for non-text files: images, PDFs, CSV tables, and a download card.
import { getText } from "../api";
import { parseCsv } from "../csv";
import type { FileKind } from "../filekinds";
import { filesUrl, h } from "./dom";

/** A download link for a workspace file. */
export function downloadLink(path: string, label = "Download"): HTMLAnchorElement {
  return downloadLinkOf(path, label);
}

/** A download link for a file of any tree (`urlOf` gives its URL). */
export function downloadLinkOf(path: string, label = "Download", urlOf: (p: string) => string = filesUrl): HTMLAnchorElement {
  const name = path.slice(path.lastIndexOf("/") + 1);
  return h("a.button", { href: urlOf(path), download: name }, label);
}

/**
 * Build the viewer element of a file; `version` busts the cache after changes.
 * `urlOf` gives the file's HTTP URL (default: the workspace's; course material has its own).
 */
export function renderViewer(kind: FileKind, path: string, version: string | undefined, onError: (e: unknown) => void, urlOf: (p: string) => string = filesUrl): HTMLElement {
  const downloadLink = (p: string, label = "Download") => downloadLinkOf(p, label, urlOf);
  const src = urlOf(path) + (version ? `?v=${encodeURIComponent(version)}` : "");
  const name = path.slice(path.lastIndexOf("/") + 1);
  const bar = h("div.viewer-bar", null, h("span.viewer-name", null, path), downloadLink(path));
  switch (kind) {
    case "image":
      return h("div.viewer", { dataset: { kind } }, bar, h("div.viewer-image", null, h("img", { src, alt: `Image ${name}` })));
    case "pdf":
      return h(
        "div.viewer",
        { dataset: { kind } },
        h("div.viewer-bar", null, h("span.viewer-name", null, path), h("a.button", { href: src, target: "_blank", rel: "noopener" }, "Open in new tab"), downloadLink(path)),
        h("iframe.viewer-pdf", { src, title: `PDF ${name}` }),
      );
    case "csv": {
      const body = h("div.viewer-table", null, h("p.muted", null, "Loading…"));
      getText(path, urlOf).then(
        (text) => {
          const { rows, truncated } = parseCsv(text, 2000);
          const [head, ...rest] = rows;
          const table = h(
            "table",
            null,
            head ? h("thead", null, h("tr", null, head.map((c) => h("th", { scope: "col" }, c)))) : null,
            h("tbody", null, rest.map((r) => h("tr", null, r.map((c) => h("td", null, c))))),
          );
          body.replaceChildren(table, truncated ? h("p.muted", null, "Showing the first 2,000 rows. Download for the whole file.") : "");
        },
        (e) => {
          body.replaceChildren(h("p.muted", null, "Could not load this file."));
          onError(e);
        },
      );
      return h("div.viewer", { dataset: { kind } }, bar, body);
    }
    default:
      return h(
        "div.viewer",
        { dataset: { kind } },
        bar,
        h("div.viewer-binary", null, h("p", null, `${name} is not a text file and cannot be shown here.`), downloadLink(path, `Download ${name}`)),
      );
  }
}
