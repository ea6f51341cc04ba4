package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
)

// progress reports how far a long step (demo's and bench's phases) has
// got. On a terminal it redraws a bar in place a few times a second and
// erases it when the step ends; elsewhere (a file, a pipe, a test's
// buffer) it prints one plain line when the step ends, or nothing when
// quiet.
type progress struct {
	w        io.Writer
	terminal bool
	quiet    bool // not a terminal: print nothing

	name  string
	total int64
	done  atomic.Int64 // records done so far; add with Add
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// isTerminal reports whether w is a character device, a terminal, without
// golang.org/x/term: an *os.File whose mode says so.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newProgress returns a progress reporter writing to w. quiet silences
// the plain lines written when w is not a terminal.
func newProgress(w io.Writer, quiet bool) *progress {
	return &progress{w: w, terminal: isTerminal(w), quiet: quiet}
}

// begin starts reporting a step of total records.
func (p *progress) begin(name string, total int64) {
	p.name, p.total, p.start = name, total, time.Now()
	p.done.Store(0)
	if !p.terminal {
		return
	}
	p.stop = make(chan struct{})
	p.wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
				p.draw()
			}
		}
	})
}

// add counts n more records done.
func (p *progress) add(n int64) { p.done.Add(n) }

func (p *progress) draw() {
	const width = 30
	done := p.done.Load()
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(done)/float64(p.total), 1)
	}
	full := int(frac * width)
	fmt.Fprintf(p.w, "\r%-8s [%s%s] %3.0f%%  %s/%s records", p.name, strings.Repeat("#", full),
		strings.Repeat(".", width-full), 100*frac, humanize.Comma(done), humanize.Comma(p.total))
}

// end ends the step: the bar is erased, or a plain line says what was
// done.
func (p *progress) end() {
	if p.terminal {
		close(p.stop)
		p.wg.Wait()
		fmt.Fprint(p.w, "\r\033[K")
		return
	}
	if !p.quiet {
		fmt.Fprintf(p.w, "%s: %s records in %s\n", p.name, humanize.Comma(p.done.Load()), fmtDuration(time.Since(p.start)))
	}
}
