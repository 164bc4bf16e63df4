// A tiny DOM builder: h("button.primary", { onclick }, "Run").

type Attrs = Record<string, unknown> & { dataset?: Record<string, string>; style?: Partial<CSSStyleDeclaration> | string };
type Child = Node | string | null | undefined | false;

/** Create an element from `tag.class.class#id`, attributes/handlers and children. */
export function h<K extends keyof HTMLElementTagNameMap>(spec: K | `${K}${"." | "#"}${string}`, attrs?: Attrs | null, ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const m = /^([a-z0-9-]+)((?:[.#][\w-]+)*)$/i.exec(spec);
  const tag = (m ? m[1] : spec) as K;
  const el = document.createElement(tag);
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g) ?? []) {
      if (part[0] === ".") el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
  }
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "dataset") Object.assign(el.dataset, v);
      else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
      else if (k in el && typeof v !== "string") (el as unknown as Record<string, unknown>)[k] = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: (Child | Child[])[]): void {
  for (const c of children) {
    if (Array.isArray(c)) append(el, c);
    else if (c === null || c === undefined || c === false) continue;
    else el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  }
}

/** Replace all children of `el`. */
export function setChildren(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  append(el, children);
}

/** Encode a workspace path for `/api/files/{path}` (each segment, keeping the slashes). */
export function filesUrl(path: string): string {
  return "/api/files/" + path.split("/").map(encodeURIComponent).join("/");
}
