package stream_test

import (
	"context"
	"log/slog"
	"sync"
)

// evictionLog is a slog handler that records the group's "evicted
// member" events: which member, and why.
type evictionLog struct {
	mu      sync.Mutex
	evicted map[string]string // member ID -> reason
}

func newEvictionLog() *evictionLog { return &evictionLog{evicted: map[string]string{}} }

func (l *evictionLog) Enabled(context.Context, slog.Level) bool { return true }

func (l *evictionLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "evicted member" {
		return nil
	}
	var id, reason string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "member":
			id = a.Value.String()
		case "reason":
			reason = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	l.evicted[id] = reason
	l.mu.Unlock()
	return nil
}

func (l *evictionLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *evictionLog) WithGroup(string) slog.Handler      { return l }

// reason returns why member id was evicted, or "" if it was not.
func (l *evictionLog) reason(id string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.evicted[id]
}
