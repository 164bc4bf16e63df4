// Light and dark theme: a data-theme attribute on <html>, remembered locally.

/** The two themes. */
export type Theme = "light" | "dark";

const KEY = "campus.theme";
const listeners = new Set<(t: Theme) => void>();

/** The theme in force. */
export function currentTheme(): Theme {
  return document.documentElement.dataset.theme === "dark" ? "dark" : "light";
}

/** Switch theme and tell the components that draw their own colours (terminal). */
export function setTheme(t: Theme): void {
  document.documentElement.dataset.theme = t;
  try {
    localStorage.setItem(KEY, t);
  } catch {
    /* private mode: theme just is not remembered */
  }
  for (const fn of listeners) fn(t);
}

/** Follow theme changes; returns an unsubscribe function. */
export function onThemeChange(fn: (t: Theme) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
