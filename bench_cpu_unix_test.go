//go:build unix

package stream_test

import "syscall"

// processCPU returns the CPU time the process has used, in every thread
// (the garbage collector's included), user and system.
func processCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
