package stream

import (
	"fmt"
	"strings"
)

// Every error of the package reads as one sentence with one "stream: "
// prefix, however deep the wrapping: "stream: send to topic x: unknown
// topic", not "stream: send to topic x: stream: topic x: stream: unknown
// topic". Sentinels carry the prefix so that they read well alone; errorf
// drops it from the errors it wraps.

// errorf formats an error as fmt.Errorf does (%w wraps, errors.Is and
// errors.As see through it), then drops the "stream: " prefixes that the
// errors it wraps bring into the middle of its message.
func errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	msg := err.Error()
	if !strings.Contains(msg, ": stream: ") {
		return err
	}
	return &wrapError{msg: onePrefix(msg), err: err}
}

// onePrefix drops the "stream: " prefixes from the middle of msg.
func onePrefix(msg string) string {
	return strings.ReplaceAll(msg, ": stream: ", ": ")
}

// wrapError is an error whose message was tidied by errorf; it unwraps to
// the error fmt.Errorf made.
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }
