//go:build !unix

package stream

// stream memory-maps its active segments and locks its directory with
// flock: it builds on Unix systems (Linux, macOS, the BSDs) only. This
// declaration makes the build fail on others with a message naming why.
var _ = stream_needs_a_unix_system_linux_macos_or_bsd
