//! Safe per-user workspace file store (filled in by the Workspaces issue).
