//go:build !unix

package stream_test

// processCPU is not measured here: cpu-ns/record reads 0.
func processCPU() int64 { return 0 }
