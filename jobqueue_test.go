package stream_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

// The job-queue scenario of issue 9, with the defaults a new user starts
// from: a restart finds a 2,000-job backlog of 25 ms jobs, so one Poll's
// 500 jobs take 12.5 s, past the 10 s SessionTimeout. Workers must not be
// evicted (heartbeats are not Polls), commits must progress, every job
// must run once, and a SIGTERM-style shutdown (cancel, then Close) must
// complete.
func TestJobQueueBacklogWithDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "jobs", 4)
		fill(t, tp, 500) // 2,000 jobs
		g := group(t, s, "workers", stream.GroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest})
		ctx, cancel := context.WithCancel(context.Background())
		var (
			mu   sync.Mutex
			runs = map[string]int{}
			done = make(chan struct{})
		)
		job := func(ctx context.Context, r *stream.Record) error {
			time.Sleep(25 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			runs[string(r.Value)]++
			if len(runs) == 2000 {
				select {
				case <-done:
				default:
					close(done)
				}
			}
			return nil
		}
		const workers = 2
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		var cs []*stream.Consumer
		for range workers {
			c := join(t, g, stream.ConsumerConfig{})
			cs = append(cs, c)
			wg.Go(func() { errs <- c.Run(ctx, job) })
		}
		gen := g.Generation()
		// Halfway: commits have progressed.
		time.Sleep(15 * time.Second)
		if lag := totalLag(t, g); lag >= 2000 {
			t.Errorf("lag %d after 15s of work: no commit progressed", lag)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Minute):
			t.Fatal("the backlog was not worked off in 10 minutes")
		}
		cancel()
		wg.Wait()
		for range workers {
			if err := <-errs; !errors.Is(err, context.Canceled) {
				t.Errorf("Run after cancel: %v", err)
			}
		}
		if got := g.Generation(); got != gen {
			t.Errorf("generation %d, was %d after the joins: members were evicted", got, gen)
		}
		for _, c := range cs {
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
		total := 0
		for k, n := range runs {
			total += n
			if n > 1 {
				t.Errorf("job %s ran %d times", k, n)
			}
		}
		if total != 2000 {
			t.Errorf("%d job runs for 2000 jobs", total)
		}
		if lag := totalLag(t, g); lag != 0 {
			t.Errorf("lag %d after shutdown, want 0", lag)
		}
	})
}

func totalLag(t *testing.T, g *stream.ConsumerGroup) int64 {
	t.Helper()
	lag, err := g.Lag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, l := range lag {
		n += l
	}
	return n
}
