// Starts the suite's shared `campus serve` and hands its URL and student to the suites.
import type { TestProject } from "vitest/node";
import { startCampus, type Campus } from "./server";

declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
    username: string;
    password: string;
    dataDir: string;
  }
}

let campus: Campus | null = null;

export async function setup(project: TestProject): Promise<void> {
  campus = await startCampus("shared");
  project.provide("baseUrl", campus.baseUrl);
  project.provide("username", campus.username);
  project.provide("password", campus.password);
  project.provide("dataDir", campus.dataDir);
}

export async function teardown(): Promise<void> {
  await campus?.stop();
}
