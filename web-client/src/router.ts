// A small view router: each role's screens are views mounted into #app.
// Professor and admin screens slot in by registering more views.
import type { UserInfo } from "./protocol";

/** What a view gets when mounted. */
export interface ViewContext {
  root: HTMLElement;
  user: UserInfo | null;
  /** What follows the view's name in the hash (`#/course/cs101` → `cs101`). */
  param: string;
  navigate(view: string): void;
  /** Called by views after login/logout so the router re-resolves the user. */
  refreshUser(user: UserInfo | null): void;
}

/** A screen. `mount` returns the cleanup to run when leaving it. */
export interface View {
  /** Roles allowed to see it; empty = anyone (the login view). */
  roles: UserInfo["role"][];
  mount(ctx: ViewContext): () => void;
}

/** Routes views by `#/name`, with the user's default view when the hash is empty. */
export class Router {
  private views = new Map<string, View>();
  private unmount: (() => void) | null = null;
  private current: string | null = null;
  private currentParam = "";
  user: UserInfo | null = null;

  constructor(
    private readonly root: HTMLElement,
    private readonly defaultView: (u: UserInfo) => string,
  ) {
    window.addEventListener("hashchange", () => this.resolve());
  }

  /** Register a view under a name. */
  register(name: string, view: View): this {
    this.views.set(name, view);
    return this;
  }

  /** Go to a view (updates the hash). */
  navigate(name: string): void {
    if (location.hash !== `#/${name}`) location.hash = `#/${name}`;
    else this.resolve();
  }

  /** Show the view the hash and the user's role allow. */
  resolve(): void {
    const full = location.hash.replace(/^#\/?/, "") || "";
    const cut = full.indexOf("/");
    let name = cut < 0 ? full : full.slice(0, cut);
    let param = "";
    try {
      param = cut < 0 ? "" : decodeURIComponent(full.slice(cut + 1));
    } catch {
      /* a malformed hash: no parameter */
    }
    if (!this.user) name = "login";
    else if (!name || name === "login") name = this.defaultView(this.user);
    const view = this.views.get(name);
    if (!view || (view.roles.length > 0 && (!this.user || !view.roles.includes(this.user.role)))) {
      name = this.user ? this.defaultView(this.user) : "login";
      param = "";
    }
    if (name === this.current && param === this.currentParam) return;
    this.unmount?.();
    this.unmount = null;
    this.current = name;
    this.currentParam = param;
    this.root.replaceChildren();
    const v = this.views.get(name);
    if (!v) return;
    this.unmount = v.mount({
      root: this.root,
      user: this.user,
      param,
      navigate: (n) => this.navigate(n),
      refreshUser: (u) => {
        this.user = u;
        this.current = null;
        this.navigate(u ? this.defaultView(u) : "login");
      },
    });
  }
}
