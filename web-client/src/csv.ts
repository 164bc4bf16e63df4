// A small RFC 4180 CSV parser for the table viewer (quotes, doubled quotes, CRLF).

/** Parse CSV text into rows, stopping after `maxRows`; `truncated` tells if it did. */
export function parseCsv(text: string, maxRows = 1000): { rows: string[][]; truncated: boolean } {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let inQuotes = false;
  let i = 0;
  const delim = guessDelimiter(text);
  while (i < text.length) {
    const c = text[i];
    if (inQuotes) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        inQuotes = false;
      } else {
        field += c;
      }
      i++;
      continue;
    }
    if (c === '"' && field === "") {
      inQuotes = true;
    } else if (c === delim) {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      row.push(field);
      field = "";
      rows.push(row);
      row = [];
      if (c === "\r" && text[i + 1] === "\n") i++;
      if (rows.length >= maxRows) return { rows, truncated: i + 1 < text.length };
    } else {
      field += c;
    }
    i++;
  }
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return { rows, truncated: false };
}

/** Comma unless the first line has more semicolons or tabs (European exports). */
function guessDelimiter(text: string): string {
  const nl = text.search(/\r|\n/);
  const first = nl < 0 ? text : text.slice(0, nl);
  const count = (ch: string) => first.split(ch).length - 1;
  const candidates: [string, number][] = [[",", count(",")], [";", count(";")], ["\t", count("\t")]];
  candidates.sort((a, b) => b[1] - a[1]);
  return candidates[0][1] > 0 ? candidates[0][0] : ",";
}
