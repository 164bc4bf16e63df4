import { describe, expect, it } from "vitest";
import { openableLink } from "../src/ui/termguard";

describe("openableLink", () => {
  it("offers http and https links only", () => {
    expect(openableLink("https://127.0.0.1/docs/")?.href).toBe("https://127.0.0.1/docs/");
    expect(openableLink("http://127.0.0.1:8080/x")?.href).toBe("http://127.0.0.1:8080/x");
    for (const bad of ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "file:///etc/passwd", "data:text/html,<script>1</script>", "vbscript:x", "blob:https://a/b", "not a url", ""]) {
      expect(openableLink(bad), bad).toBeNull();
    }
  });
});
