// Which viewer a file opens in, from its MIME type guess and name.

/** How a file is shown. */
export type FileKind = "text" | "image" | "pdf" | "csv" | "binary";

const TEXT_EXT = new Set([
  "py", "txt", "md", "json", "toml", "yaml", "yml", "ini", "cfg", "js", "ts", "html", "css", "c", "h", "cpp", "java", "sh", "sql", "xml", "tsv", "log", "rst", "pyi", "r",
]);
const IMAGE_EXT = new Set(["png", "jpg", "jpeg", "gif", "svg", "webp"]);

/** Pick the viewer for a file. */
export function fileKind(path: string, mime?: string | null): FileKind {
  const name = path.slice(path.lastIndexOf("/") + 1).toLowerCase();
  const ext = name.includes(".") ? name.slice(name.lastIndexOf(".") + 1) : "";
  if (ext === "csv" || mime === "text/csv") return "csv";
  if (IMAGE_EXT.has(ext) || (mime && /^image\/(png|jpeg|gif|svg\+xml|webp)$/.test(mime))) return "image";
  if (ext === "pdf" || mime === "application/pdf") return "pdf";
  if (TEXT_EXT.has(ext) || !ext || (mime && (mime.startsWith("text/") || mime === "application/json"))) return "text";
  return "binary";
}
