// The conflict banner: both versions side by side and three choices, none of
// which loses a version.
import type { Choice, Conflict } from "../conflict";
import { h } from "./dom";

/** Render the banner for a conflict; `onChoose` runs the user's choice. */
export function renderConflictBanner(c: Conflict, onChoose: (choice: Choice) => void): HTMLElement {
  const buttons = [
    h("button.primary", { dataset: { choice: "mine" }, title: "Save your text over the other version (the other version stays in the history)" }, "Keep mine"),
    h("button", { dataset: { choice: "theirs" }, title: "Show the other version (yours stays in the history)" }, "Take theirs"),
    h("button", { dataset: { choice: "both" }, title: "Save your text as a copy next to this file" }, "Keep both"),
  ];
  for (const b of buttons) {
    b.addEventListener("click", () => {
      for (const x of buttons) x.disabled = true;
      onChoose(b.dataset.choice as Choice);
    });
  }
  return h(
    "div.conflict-banner",
    { role: "alert", "aria-label": `Conflict in ${c.path}` },
    h(
      "div.conflict-head",
      null,
      h("strong", null, `${c.path} was changed in another tab or on another device.`),
      h("span", null, " Both versions are kept — choose which one stays open."),
    ),
    h(
      "div.conflict-sides",
      null,
      h("figure.conflict-side.mine", null, h("figcaption", null, "Your version (not saved)"), h("pre", { tabIndex: 0 }, c.mine)),
      h("figure.conflict-side.theirs", null, h("figcaption", null, "Their version (saved)"), h("pre", { tabIndex: 0 }, c.theirs)),
    ),
    h("div.conflict-actions", null, buttons),
  );
}
