/**
 * Tests that need something this machine may lack (kubectl, say). Where it is missing a test reports a
 * skip, which the runner counts and shows as one, never a pass. In CI (CI=true) nothing may be missing: the
 * test runs and fails on the missing tool instead, so CI cannot go green without it.
 */

/** The `skip` option for a test that needs `what`: a reason when it is missing (outside CI), else false. */
export function skipUnless(available: boolean, what: string): string | false {
  if (available || process.env.CI === "true") return false;
  return `${what} is not available here (in CI, CI=true, this test fails instead)`;
}
