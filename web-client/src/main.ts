// Entry point: find out who is logged in, then route to their view.
import { me } from "./api";
import { Router, type View } from "./router";
import "./styles.css";
import { loginView } from "./views/login";

/** A view loaded on first use, so the login page does not download the IDE. */
function lazy(roles: View["roles"], load: () => Promise<View>): View {
  return {
    roles,
    mount(ctx) {
      let cleanup: (() => void) | null = null;
      let left = false;
      load().then(
        (v) => {
          if (!left) cleanup = v.mount(ctx);
        },
        (e) => {
          ctx.root.textContent = `Could not load the page (${String(e)}). Reload to try again.`;
        },
      );
      return () => {
        left = true;
        cleanup?.();
      };
    },
  };
}

const root = document.getElementById("app")!;
// Every role starts in the workspace IDE (with its Courses panel); course
// staff manage a course on its page; admins also have the dashboard (#/admin).
const router = new Router(root, () => "ide")
  .register("login", loginView)
  .register("ide", lazy(["student", "professor", "admin"], () => import("./views/ide").then((m) => m.ideView)))
  .register("course", lazy(["student", "professor", "admin"], () => import("./views/course").then((m) => m.courseView)))
  .register("assignment", lazy(["student", "professor", "admin"], () => import("./views/assignment").then((m) => m.assignmentView)))
  .register("progress", lazy(["student", "professor", "admin"], () => import("./views/progress").then((m) => m.progressView)))
  .register("admin", lazy(["admin"], () => import("./views/admin").then((m) => m.adminView)));

me()
  .catch(() => null)
  .then((user) => {
    router.user = user;
    router.resolve();
  });
