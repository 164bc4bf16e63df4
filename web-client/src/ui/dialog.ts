// Modal prompts built on <dialog> (focus trapped, Esc cancels).
import { h } from "./dom";

/** Ask for a line of text; resolves null on cancel. */
export function askText(title: string, initial = "", okLabel = "OK"): Promise<string | null> {
  return new Promise((resolve) => {
    const input = h("input", { type: "text", value: initial, "aria-label": title, spellcheck: "false" });
    const form = h(
      "form",
      { method: "dialog" },
      h("h2", null, title),
      input,
      h("div.dialog-buttons", null, h("button", { type: "button", value: "cancel", onclick: () => done(null) }, "Cancel"), h("button.primary", { type: "submit" }, okLabel)),
    );
    const dlg = h("dialog", null, form);
    const done = (v: string | null) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const v = input.value.trim();
      done(v === "" ? null : v);
    });
    dlg.addEventListener("cancel", (e) => {
      e.preventDefault();
      done(null);
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    input.focus();
    const dot = initial.lastIndexOf(".");
    input.setSelectionRange(0, dot > 0 ? dot : initial.length);
  });
}

/** Ask yes/no. */
export function confirmDialog(title: string, text: string, okLabel = "OK"): Promise<boolean> {
  return new Promise((resolve) => {
    const ok = h("button.primary", { type: "button" }, okLabel);
    const cancel = h("button", { type: "button" }, "Cancel");
    const dlg = h("dialog", null, h("h2", null, title), h("p", null, text), h("div.dialog-buttons", null, cancel, ok));
    const done = (v: boolean) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    ok.addEventListener("click", () => done(true));
    cancel.addEventListener("click", () => done(false));
    dlg.addEventListener("cancel", (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    ok.focus();
  });
}

/** A modal with arbitrary content and a Close button. */
export function showModal(title: string, body: HTMLElement): { close: () => void } {
  const closeBtn = h("button", { type: "button" }, "Close");
  const dlg = h("dialog.wide", null, h("h2", null, title), body, h("div.dialog-buttons", null, closeBtn));
  const close = () => {
    dlg.close();
    dlg.remove();
  };
  closeBtn.addEventListener("click", close);
  dlg.addEventListener("close", () => dlg.remove());
  document.body.appendChild(dlg);
  dlg.showModal();
  closeBtn.focus();
  return { close };
}
