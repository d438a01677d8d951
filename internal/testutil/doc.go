// Package testutil holds helpers shared by tests: capability checks that skip
// (or, in CI, fail) for a named reason (Require, with the capabilities listed
// in VFIOGATE_TEST_REQUIRE turning a skip into a failure), and starters for
// swtpm and libvirtd that tests use when those are installed.
package testutil
