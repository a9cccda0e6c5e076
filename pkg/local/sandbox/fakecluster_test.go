package sandbox

// The fake cluster of the tests: one Service, one DNS (the tests that run
// the sandbox are Linux's; the DNS tests are every platform's).
const (
	fakeDNS     = "10.96.0.10"
	fakeBackend = "10.96.0.5"
	fakeRefused = "10.96.0.6"
	fakeNS      = "shop"
)
