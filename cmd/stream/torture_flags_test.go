package main

import "flag"

// The torture suite (the root package's torture_test.go) takes these
// flags, and "go test -run Torture ./... -torture.time=30s" passes them
// to every package's test binary: declared here, they are accepted and
// ignored, as this package has no torture tests.
func init() {
	flag.Duration("torture.time", 0, "the root package's torture suite's; ignored here")
	flag.Uint64("torture.seed", 0, "the root package's torture suite's; ignored here")
	flag.String("torture.mode", "", "the root package's torture suite's; ignored here")
	flag.Bool("torture.known", false, "the root package's torture suite's; ignored here")
}
